/**
 * One chaos run on the leaderless store (`npm run chaos -- --protocol eventual`): five
 * `synod node --protocol gossip` processes in the namespaces of ChaosNet, client processes
 * (eventual-client.ts) putting, reading and incrementing while the nemesis schedule plays the
 * faults that make sense without a leader (kill, pause, partitions, one-way partitions, loss,
 * latency), then the heal; the verdict (eventual-verdict.ts) is what the store promises:
 * convergence within a bound after the heal, no acknowledged write lost (present, or
 * superseded by a write that had seen it), counters equal to the acknowledged increments (up
 * to the indeterminate ones), memory bounded, no node exiting by itself.
 *
 * Everything lands in `dir`: result.json, summary.txt, history.jsonl (merged),
 * history-<i>.jsonl, final.json (each node's final reads), nemesis.jsonl, schedule.json,
 * rss.jsonl, logs/<id>.log, data/<id>/.
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { HistoryEvent } from '../../../lib/history/event.js';
import {
  connectLeaderless,
  type RemoteLeaderlessKvClient,
} from '../../../lib/kv-client/connect.js';
import { spawnClients } from './client-spawn.js';
import { monotonicNow } from './clock.js';
import { ChaosCluster } from './cluster.js';
import {
  type EventualVerdict,
  type FinalRead,
  judgeEventual,
  type ReplicaView,
} from './eventual-verdict.js';
import {
  type NoteFn,
  RssSampler,
  restartCrashed,
  runFault,
  sleep,
  unexpectedExits,
  until,
  victimsFromPick,
} from './faults.js';
import { type NemesisKind, type ScheduledFault, schedule, shuffled } from './nemesis.js';
import { ChaosNet, netUnavailableReason } from './net.js';
import type { ChaosOptions, ChaosResult } from './run.js';
import { SECRET, writeJsonl, writeResult, writeSecretFiles } from './run-files.js';
import { mergeHistories, readJsonl } from './verdict.js';

/** The nemeses that make sense for a leaderless store (no leader to pick, no membership change). */
export const EVENTUAL_NEMESES: readonly NemesisKind[] = [
  'kill',
  'pause',
  'partition-halves',
  'partition-ring',
  'partition-one-way',
  'loss',
  'slow',
];

export interface EventualChaosOptions extends ChaosOptions {
  /** Counter keys (`pn/c0`…). Default 2. */
  counters?: number;
  /** The replicas must converge within this long after the heal (default 90 s). */
  convergeBoundMs?: number;
}

/** What summary.txt shows of a result besides the status and the failures. */
const SUMMARY_FIELDS = [
  'durationMs',
  'operations',
  'eventual',
  'faults',
  'writeAfterHealMs',
  'convergedAfterMs',
  'divergedAtHeal',
  'memory',
  'restarts',
  'network',
] as const;

export async function runEventualChaos(o: EventualChaosOptions): Promise<ChaosResult> {
  const tStart = monotonicNow();
  const sink = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const log = (l: string) => sink(`[+${((monotonicNow() - tStart) / 1000).toFixed(1)}s] ${l}`);
  const base = { dir: o.dir, seed: o.seed, protocol: 'eventual', failures: [] as string[] };
  const unavailable = netUnavailableReason();
  if (unavailable) return { ...base, status: 'skipped', reason: unavailable };
  for (const k of o.kinds ?? [])
    if (!EVENTUAL_NEMESES.includes(k))
      return {
        ...base,
        status: 'error',
        reason: `nemesis ${k} does not apply to the leaderless store (${EVENTUAL_NEMESES.join(', ')} do)`,
      };
  const { secretFile, adminSecretFile } = writeSecretFiles(o.dir);
  const ids = Array.from({ length: o.nodes ?? 5 }, (_, i) => `n${i + 1}`);
  const counters = o.counters ?? 2;
  const keys = o.keys ?? 5;
  const kinds = o.kinds ?? EVENTUAL_NEMESES;
  const net = new ChaosNet(ids);
  const nemLog: Record<string, unknown>[] = [];
  const note: NoteFn = (e) => {
    nemLog.push({ time: monotonicNow(), ...e });
    log(`[nemesis] ${JSON.stringify(e)}`);
  };
  let cluster: ChaosCluster | undefined;
  let kv: RemoteLeaderlessKvClient | undefined;
  const clients: ChildProcess[] = [];
  const cleanup = () => {
    for (const c of clients) c.kill('SIGKILL');
    cluster?.killAllNow();
    net.teardown();
  };
  const onExit = () => cleanup();
  process.once('exit', onExit);
  try {
    net.setup();
    log(
      `[chaos] network: ${ids.length} namespaces on bridge ${net.bridge} (${net.hostIp}/24), loss=${net.capabilities.statistic} latency=${net.capabilities.latency}`,
    );
    const relaysReady = kinds.includes('slow') ? net.startRelays(o.seed) : Promise.resolve();
    relaysReady.catch(() => {});
    cluster = new ChaosCluster({
      net,
      dir: o.dir,
      secretFile,
      secret: SECRET,
      protocol: 'gossip',
      nodeArgs: ['--key-types', 'pn/=pn', '--admin-secret-file', adminSecretFile],
    });
    const c = cluster;
    log(`[chaos] nodes run from ${c.cli.from} (${c.cli.cmd.slice(1).join(' ')})`);
    c.startAll();
    // The harness's own client, from the root namespace (never partitioned).
    kv = await connectLeaderless(c.peerSpecs(), {
      secret: SECRET,
      timeoutMs: 5000,
      attemptTimeoutMs: 2500,
      logger: { log: () => {} },
    });
    const client = kv;
    const ask = <T>(node: string, msg: object, ms = 3000) =>
      client.system
        .ask(`${node}/gossip`, msg as never, ms)
        .then((v) => v as T)
        .catch(() => undefined);
    await until(
      `${ids.length} replicas ready, each seeing ${ids.length} alive`,
      async () => {
        for (const p of c.procs.values())
          if (p.state === 'down' && p.exits.length > 0)
            throw new Error(`node ${p.id} exited at start: ${p.tail.join('\n')}`);
        const snaps = await Promise.all(
          ids.map((id) =>
            ask<{ ready: boolean; members: { state: string }[] }>(id, { type: 'replica-snapshot' }),
          ),
        );
        return snaps.every(
          (s) => s?.ready && s.members.filter((m) => m.state === 'alive').length === ids.length,
        )
          ? true
          : undefined;
      },
      120_000,
      500,
    );
    log('[chaos] leaderless keyspace formed');

    // ---- clients
    const procs = o.clientProcs ?? 2;
    const workers = o.workersPerProc ?? 3;
    const { ready: clientReady, done: clientDone } = spawnClients({
      script: 'test/chaos/harness/eventual-client.ts',
      procs,
      workers,
      keys,
      durationMs: o.durationMs,
      peers: c.peerSpecs(),
      secret: SECRET,
      dir: o.dir,
      seed: o.seed,
      extraArgs: ['--counters', String(counters)],
      children: clients,
      failures: base.failures,
      log,
    });
    await Promise.race([Promise.all(clientReady), sleep(120_000)]);
    log(
      `[chaos] ${procs} client processes x ${workers} workers on ${keys} keys + ${counters} counters`,
    );

    // ---- memory samples
    const rss = new RssSampler(c, ids);

    // ---- nemesis
    await relaysReady;
    const plan = schedule({ seed: o.seed, durationMs: o.durationMs, kinds });
    writeFileSync(path.join(o.dir, 'schedule.json'), JSON.stringify(plan, null, 1));
    const t0 = monotonicNow();
    for (const f of plan) {
      await sleep(t0 + f.at - monotonicNow());
      restartCrashed(c, note, base.failures);
      await applyFault(c, net, f, note);
    }
    // The workload ends inside a partition (2 + 3, from the seed), so the heal below leaves
    // something to converge: writes on both sides, hints for the other side.
    const closing = shuffled(ids, o.seed >>> 0);
    const closingGroups = [
      closing.slice(0, Math.floor(ids.length / 2)),
      closing.slice(Math.floor(ids.length / 2)),
    ];
    note({ event: 'start', kind: 'partition-halves', closing: true, groups: closingGroups });
    net.partition(closingGroups);
    await Promise.race([
      Promise.all(clientDone),
      sleep(o.durationMs - (monotonicNow() - t0) + 30_000),
    ]);
    for (const ch of clients) if (ch.exitCode === null) ch.kill('SIGKILL');

    // ---- heal, then: writes served, convergence
    net.heal();
    for (const id of ids) c.resume(id);
    restartCrashed(c, note, base.failures);
    for (const id of ids) if (c.proc(id).state === 'down') c.start(id);
    const healedAt = monotonicNow();
    note({ event: 'heal-all' });
    const writeBound = o.writeBoundMs ?? 30_000;
    let writeAfterHealMs: number | undefined;
    for (let i = 0; monotonicNow() - healedAt < writeBound + 5000; i++) {
      const r = await client.put(`chaos-probe/${i}`, 'after-heal', { w: 'quorum' });
      if (r.outcome === 'ok') {
        writeAfterHealMs = Math.round(monotonicNow() - healedAt);
        break;
      }
      await sleep(200);
    }
    if (writeAfterHealMs === undefined || writeAfterHealMs > writeBound)
      base.failures.push(
        `no write was served at W = quorum within ${writeBound} ms after healing (${writeAfterHealMs ?? 'none at all'})`,
      );
    log(`[chaos] first write at W = quorum after healing: ${writeAfterHealMs} ms`);

    const inspectAll = async () => {
      const res = await Promise.all(
        ids.map((id) => ask<ReplicaView>(id, { type: 'replica-inspect' })),
      );
      return new Map(ids.map((id, i) => [id, res[i]]));
    };
    const convergeBound = o.convergeBoundMs ?? 90_000;
    let convergedAfterMs: number | undefined;
    let views = await inspectAll();
    // How far apart the replicas were at the first look after the heal (ranges with differing
    // roots, hints left, nodes not answering): what the convergence time is the time to undo.
    const divergedAtHeal = judgeEventual([], new Map(), views).diverged;
    log(
      `[chaos] at the heal: ${divergedAtHeal.length} differences (${divergedAtHeal.slice(0, 3).join('; ')})`,
    );
    while (monotonicNow() - healedAt < convergeBound) {
      if (judgeEventual([], new Map(), views).diverged.length === 0) {
        convergedAfterMs = Math.round(monotonicNow() - healedAt);
        break;
      }
      await sleep(500);
      views = await inspectAll();
    }
    log(
      `[chaos] replicas converged (equal Merkle roots, no hints) ${convergedAfterMs ?? 'never'} ms after healing`,
    );
    if (convergedAfterMs === undefined)
      base.failures.push(`the replicas did not converge within ${convergeBound} ms of healing`);

    // ---- final reads: every key through every node at R = all
    const allKeys = [
      ...Array.from({ length: keys }, (_, k) => `k${k}`),
      ...Array.from({ length: counters }, (_, k) => `pn/c${k}`),
    ];
    const finals = new Map<string, Map<string, FinalRead>>();
    for (const node of ids) {
      const m = new Map<string, FinalRead>();
      for (const key of allKeys) {
        for (let attempt = 0; attempt < 5; attempt++) {
          const r = await client.get(key, { r: 'all', node });
          if (r.outcome === 'ok') {
            m.set(key, {
              siblings: [...r.value.siblings].map(String).sort(),
              context: r.value.context,
              ...(typeof r.value.crdt === 'number' ? { crdt: r.value.crdt } : {}),
            });
            break;
          }
          await sleep(300);
        }
      }
      finals.set(node, m);
    }
    writeFileSync(
      path.join(o.dir, 'final.json'),
      `${JSON.stringify(Object.fromEntries([...finals].map(([n, m]) => [n, Object.fromEntries(m)])), null, 1)}\n`,
    );
    // The final reads repair what they find, and under load a member SWIM suspects for a moment
    // gets hints (sloppy quorum): wait (bounded) until the replicas agree again, then judge.
    const settleFrom = monotonicNow();
    views = await inspectAll();
    while (
      judgeEventual([], new Map(), views).diverged.length > 0 &&
      monotonicNow() - settleFrom < 30_000
    ) {
      await sleep(500);
      views = await inspectAll();
    }
    const settledAfterFinalReadsMs = Math.round(monotonicNow() - settleFrom);
    log(
      `[chaos] after the final reads the replicas agreed again in ${settledAfterFinalReadsMs} ms`,
    );
    rss.stop(path.join(o.dir, 'rss.jsonl'));
    base.failures.push(...unexpectedExits(c));
    await kv.disconnect().catch(() => undefined);
    kv = undefined;
    await c.stopAll();
    cluster = undefined;
    net.teardown();
    writeJsonl(path.join(o.dir, 'nemesis.jsonl'), nemLog);

    // ---- judge
    const parts: HistoryEvent[][] = [];
    for (let i = 0; i < procs; i++) parts.push(readJsonl(path.join(o.dir, `history-${i}.jsonl`)));
    const history = mergeHistories(parts);
    writeJsonl(path.join(o.dir, 'history.jsonl'), history);
    const verdict: EventualVerdict = judgeEventual(history, finals, views);
    base.failures.push(...verdict.failures);
    const memory = rss.judge(o.rssLimitBytes ?? 512 * 1024 * 1024, base.failures);
    const done = history.filter((e) => e.type !== 'invoke');
    const counts = {
      ok: done.filter((e) => e.type === 'ok').length,
      fail: done.filter((e) => e.type === 'fail').length,
      info: done.filter((e) => e.type === 'info').length,
      open: history.filter((e) => e.type === 'invoke').length - done.length,
    };
    const result: ChaosResult = {
      ...base,
      status: base.failures.length ? 'fail' : 'pass',
      reason: base.failures.length
        ? (base.failures[0] as string)
        : 'converged after the heal, no acknowledged write lost, counters exact, writes served after healing, memory bounded',
      durationMs: o.durationMs,
      operations: counts,
      eventual: verdict.stats,
      faults: nemLog.filter((e) => e.event === 'start').map((e) => e.kind),
      writeAfterHealMs,
      convergedAfterMs,
      divergedAtHeal: divergedAtHeal.length,
      settledAfterFinalReadsMs,
      memory,
      restarts: Object.fromEntries([...c.procs.values()].map((p) => [p.id, p.starts - 1])),
      network: net.capabilities,
    };
    writeResult(o.dir, result, SUMMARY_FIELDS);
    return result;
  } catch (err) {
    const r: ChaosResult = {
      ...base,
      status: 'error',
      reason: (err as Error).stack ?? String(err),
    };
    if (existsSync(o.dir)) writeResult(o.dir, r, SUMMARY_FIELDS);
    return r;
  } finally {
    process.removeListener('exit', onExit);
    await kv?.disconnect().catch(() => undefined);
    const left = cluster;
    cleanup();
    await left?.closeProbe();
    for (const p of left?.procs.values() ?? []) p.log.end();
  }
}

/**
 * Applies one fault for its duration, then undoes it, its victims from the schedule's pick
 * (faults.ts); a kind that needs a leader or changes membership is noted as skipped.
 */
async function applyFault(
  c: ChaosCluster,
  net: ChaosNet,
  f: ScheduledFault,
  note: NoteFn,
): Promise<void> {
  const a = victimsFromPick(f, c.ids);
  if (a) return runFault(c, net, f, a, note);
  note({ event: 'skip', kind: f.kind, why: 'does not apply to the leaderless store' });
  await sleep(f.durationMs);
}
