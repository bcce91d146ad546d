/**
 * One chaos run: build the namespaced network, start the cluster, run the client processes
 * while the nemesis schedule plays, heal, measure how soon writes are served again, read
 * every key one last time, stop everything and judge. Everything lands in `dir`:
 *
 *   result.json      the verdict and every number below
 *   summary.txt      the same for a person
 *   history.jsonl    the merged Jepsen history (clients + final reads)
 *   report.html      the checker's timeline (linked from the summary when something fails)
 *   nemesis.jsonl    each fault as it started and ended, with its victims
 *   rss.jsonl        memory samples of every node
 *   logs/<id>.log    each node's output, across restarts
 */
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { getHeapStatistics } from 'node:v8';
import type { HistoryEvent } from '../../../lib/history/event.js';
import { HistoryRecorder } from '../../../lib/history/recorder.js';
import { makeAdminProof } from '../../../lib/node/admin-auth.js';
import { type BackupAttempt, backupOnce, judgeBackups } from './backups.js';
import { spawnClients } from './client-spawn.js';
import { monotonicNow } from './clock.js';
import { ChaosCluster } from './cluster.js';
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
import { NEMESES, type NemesisKind, type ScheduledFault, schedule, shuffled } from './nemesis.js';
import { ChaosNet, netUnavailableReason } from './net.js';
import { ADMIN_SECRET, SECRET, writeJsonl, writeResult, writeSecretFiles } from './run-files.js';
import { judgeHistory, mergeHistories, readJsonl } from './verdict.js';

export interface ChaosOptions {
  seed: number;
  durationMs: number;
  protocol: string;
  dir: string;
  nodes?: number;
  clientProcs?: number;
  workersPerProc?: number;
  keys?: number;
  kinds?: readonly NemesisKind[];
  /** A node whose RSS goes above this fails the run (default 512 MiB). */
  rssLimitBytes?: number;
  /** Writes must be served again within this long after healing (default 30 s). */
  writeBoundMs?: number;
  /**
   * Wall-clock budget of the linearizability check (default: half the run, at least 120 s).
   * A 30-minute run records 140,000–270,000 operations; under load a fixed 120 s ran out and
   * failed the run as "could not decide" although the history was linearizable.
   */
  checkerTimeoutMs?: number;
  /** Take backups during faults (default true), see ./backups.ts. */
  backups?: boolean;
  log?: (line: string) => void;
}

/**
 * The checker's memory budget per key: 60 % of this process's heap limit, at least the
 * checker's own default of 512 MiB. A memoised configuration holds a bitset over the key's
 * pending operations, so its size grows with the history: a 30-minute Raft run of 545,000
 * operations on 5 keys ran out of the default 512 MiB at 40,000 configurations and was judged
 * "could not decide".
 */
function checkerMemoryBytes(): number {
  return Math.max(512 * 1024 ** 2, Math.floor(getHeapStatistics().heap_size_limit * 0.6));
}

export interface ChaosResult {
  status: 'pass' | 'fail' | 'skipped' | 'error';
  reason: string;
  dir: string;
  seed: number;
  protocol: string;
  failures: string[];
  [k: string]: unknown;
}

/** What summary.txt shows of a result besides the status and the failures. */
const SUMMARY_FIELDS = [
  'durationMs',
  'operations',
  'checker',
  'faults',
  'writeAfterHealMs',
  'memory',
  'restarts',
  'backups',
  'network',
] as const;

export async function runChaos(o: ChaosOptions): Promise<ChaosResult> {
  const tStart = monotonicNow();
  const sink = o.log ?? ((l: string) => process.stderr.write(`${l}\n`));
  const log = (l: string) => sink(`[+${((monotonicNow() - tStart) / 1000).toFixed(1)}s] ${l}`);
  const base = { dir: o.dir, seed: o.seed, protocol: o.protocol, failures: [] as string[] };
  const unavailable = netUnavailableReason();
  if (unavailable) return { ...base, status: 'skipped', reason: unavailable };
  const { secretFile, adminSecretFile } = writeSecretFiles(o.dir);
  const ids = Array.from({ length: o.nodes ?? 5 }, (_, i) => `n${i + 1}`);
  const net = new ChaosNet(ids);
  const nemLog: Record<string, unknown>[] = [];
  const nemesisFile = path.join(o.dir, 'nemesis.jsonl');
  // The fault in force now (for the backups' record of what they ran under).
  let activeFault: string | undefined;
  const note: NoteFn = (e) => {
    if (e.event === 'start') activeFault = String(e.kind);
    if (e.event === 'end') activeFault = undefined;
    const entry = { time: monotonicNow(), ...e };
    nemLog.push(entry);
    log(`[nemesis] ${JSON.stringify(e)}`);
  };
  let cluster: ChaosCluster | undefined;
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
      `[chaos] network: ${ids.length} namespaces on bridge ${net.bridge} (${net.hostIp}/24), netem=${net.capabilities.netem} loss=${net.capabilities.statistic} latency=${net.capabilities.latency}${net.capabilities.latencyProblem ? ` (${net.capabilities.latencyProblem})` : ''}`,
    );
    // Delay relays (no netem): started with the nodes, needed before the first `slow` fault.
    const relaysReady = (o.kinds ?? NEMESES).includes('slow')
      ? net.startRelays(o.seed)
      : Promise.resolve();
    // A relay that fails to start must not leave an unhandled rejection while nodes start.
    relaysReady.catch(() => {});
    cluster = new ChaosCluster({
      net,
      dir: o.dir,
      secretFile,
      secret: SECRET,
      protocol: o.protocol,
      nodeArgs: ['--admin-secret-file', adminSecretFile],
    });
    const c = cluster;
    log(`[chaos] nodes run from ${c.cli.from} (${c.cli.cmd.slice(1).join(' ')})`);
    c.startAll();
    // A node that refuses the protocol exits at once: skip loudly rather than fail.
    const formed = await until(
      `a leader with ${ids.length} voters`,
      async () => {
        for (const p of c.procs.values()) {
          if (p.state === 'down' && p.exits.length > 0) {
            const text = p.tail.join('\n');
            if (o.protocol !== 'raft' && /protocol|paxos|not yet/i.test(text))
              throw Object.assign(new Error(text), { skip: true });
            throw new Error(`node ${p.id} exited at start: ${text}`);
          }
        }
        const l = await c.leader();
        return l && l.voters.length === ids.length ? l : undefined;
      },
      90_000,
      500,
    );
    log(`[chaos] cluster formed: leader ${formed.id} term ${formed.term}`);

    // ---- clients
    const procs = o.clientProcs ?? 2;
    const workers = o.workersPerProc ?? 3;
    const keys = o.keys ?? 5;
    const { ready: clientReady, done: clientDone } = spawnClients({
      script: 'test/chaos/harness/client-proc.ts',
      procs,
      workers,
      keys,
      durationMs: o.durationMs,
      peers: c.peerSpecs(),
      secret: SECRET,
      dir: o.dir,
      seed: o.seed,
      children: clients,
      failures: base.failures,
      log,
    });

    await Promise.race([Promise.all(clientReady), sleep(120_000)]);
    log(`[chaos] ${procs} client processes x ${workers} workers running on ${keys} keys`);

    // ---- memory samples
    const rss = new RssSampler(c, ids);

    // ---- nemesis
    await relaysReady;
    const plan = schedule({ seed: o.seed, durationMs: o.durationMs, kinds: o.kinds ?? NEMESES });
    writeFileSync(path.join(o.dir, 'schedule.json'), JSON.stringify(plan, null, 1));
    const t0 = monotonicNow();
    // Backups during faults: at 40 % and 70 % of the workload, whatever is active then.
    const backupRepo = path.join(o.dir, 'backup-repo');
    const backupAttempts: BackupAttempt[] = [];
    const backupsDone =
      o.backups !== false
        ? Promise.all(
            [0.4, 0.7].map(async (frac, i) => {
              await sleep(t0 + o.durationMs * frac - monotonicNow());
              for (let attempt = 0; attempt < 2; attempt++) {
                const during = activeFault ?? 'none';
                const a = await backupOnce(c, {
                  repo: backupRepo,
                  secretFile,
                  listenHost: net.hostIp || '127.0.0.1',
                  agentId: `backup${i}${attempt}`,
                });
                backupAttempts.push(a);
                note({ event: 'backup', attempt, during, ...a, at: undefined });
                if (a.ok) return;
                await sleep(5000);
              }
            }),
          )
        : Promise.resolve();
    for (const f of plan) {
      await sleep(t0 + f.at - monotonicNow());
      restartCrashed(c, note, base.failures);
      await applyFault(c, net, f, note, o.protocol, base.failures);
    }
    await backupsDone;
    await Promise.race([
      Promise.all(clientDone),
      sleep(o.durationMs - (monotonicNow() - t0) + 30_000),
    ]);
    for (const ch of clients) if (ch.exitCode === null) ch.kill('SIGKILL');

    // ---- heal and measure
    net.heal();
    for (const id of ids) c.resume(id);
    restartCrashed(c, note, base.failures);
    for (const id of ids) if (c.procs.get(id)?.state === 'down') c.start(id);
    const healedAt = monotonicNow();
    note({ event: 'heal-all' });
    const writeBound = o.writeBoundMs ?? 30_000;
    const kv = await c.kvClient({ timeoutMs: 2000, attemptTimeoutMs: 700 });
    let writeAfterHealMs: number | undefined;
    for (let i = 0; monotonicNow() - healedAt < writeBound + 5000; i++) {
      const r = await kv.put('chaos-probe', `after-heal-${i}`);
      if (r.outcome === 'ok') {
        writeAfterHealMs = Math.round(monotonicNow() - healedAt);
        break;
      }
    }
    if (writeAfterHealMs === undefined || writeAfterHealMs > writeBound)
      base.failures.push(
        `no write was served within ${writeBound} ms after healing (${writeAfterHealMs ?? 'none at all'})`,
      );
    log(`[chaos] first write after healing: ${writeAfterHealMs} ms`);

    const finalFile = path.join(o.dir, 'history-final.jsonl');
    const rec = HistoryRecorder.toFile(finalFile, { clock: { now: monotonicNow }, keep: false });
    const unread: string[] = [];
    for (let k = 0; k < keys; k++) {
      const key = `k${k}`;
      let done = false;
      for (let attempt = 0; attempt < 20 && !done; attempt++) {
        const h = rec.invoke('final', 'read', key);
        const r = await kv.get(key, { level: 'strong' });
        if (r.outcome === 'ok') {
          h.ok(r.value.value);
          done = true;
        } else h.fail(r.error.code);
      }
      if (!done) unread.push(key);
    }
    await rec.close();
    if (unread.length) base.failures.push(`final read failed for ${unread.join(', ')}`);
    await kv.close();
    rss.stop(path.join(o.dir, 'rss.jsonl'));
    base.failures.push(...unexpectedExits(c));
    await c.stopAll();
    cluster = undefined;
    net.teardown();
    writeJsonl(nemesisFile, nemLog);

    // ---- judge
    const parts: HistoryEvent[][] = [];
    for (let i = 0; i < procs; i++) parts.push(readJsonl(path.join(o.dir, `history-${i}.jsonl`)));
    parts.push(readJsonl(finalFile));
    const history = mergeHistories(parts);
    writeJsonl(path.join(o.dir, 'history.jsonl'), history);
    const reportFile = path.join(o.dir, 'report.html');
    const hv = judgeHistory(history, {
      finalProcess: 'final',
      reportFile,
      title: `chaos ${o.protocol} seed ${o.seed}`,
      timeoutMs: o.checkerTimeoutMs ?? Math.max(120_000, Math.round(o.durationMs / 2)),
      maxMemoryBytes: checkerMemoryBytes(),
    });
    if (hv.checker.result === 'violation')
      base.failures.push(`not linearizable: ${hv.checker.summary}`);
    if (hv.checker.result === 'unknown')
      base.failures.push(
        `the checker could not decide (${hv.checker.reason ?? hv.checker.summary})`,
      );
    for (const l of hv.lost) base.failures.push(`lost write on ${l.key}: ${l.problem}`);
    base.failures.push(...(await judgeBackups(backupRepo, backupAttempts, history)));
    const memory = rss.judge(o.rssLimitBytes ?? 512 * 1024 * 1024, base.failures);
    const ops = history.filter((e) => e.type !== 'invoke' && e.process !== 'final');
    const counts = {
      ok: ops.filter((e) => e.type === 'ok').length,
      fail: ops.filter((e) => e.type === 'fail').length,
      info: ops.filter((e) => e.type === 'info').length,
      open:
        history.filter((e) => e.type === 'invoke').length -
        ops.length -
        history.filter((e) => e.process === 'final' && e.type !== 'invoke').length,
    };
    const faults = nemLog.filter((e) => e.event === 'start').map((e) => e.kind);
    const result: ChaosResult = {
      ...base,
      status: base.failures.length ? 'fail' : 'pass',
      reason: base.failures.length
        ? (base.failures[0] as string)
        : 'linearizable, no acknowledged write lost, writes served after healing, memory bounded',
      durationMs: o.durationMs,
      operations: counts,
      checker: { result: hv.checker.result, summary: hv.checker.summary, stats: hv.checker.stats },
      faults,
      writeAfterHealMs,
      memory,
      restarts: Object.fromEntries([...c.procs.values()].map((p) => [p.id, p.starts - 1])),
      backups: {
        taken: backupAttempts.filter((a) => a.ok).length,
        failed: backupAttempts.filter((a) => !a.ok).map((a) => a.message ?? ''),
        // Written backups whose agent could not leave the cluster (exit 3).
        leftBehind: backupAttempts.flatMap((a) => (a.leftBehind ? [a.leftBehind] : [])),
      },
      network: net.capabilities,
      report: reportFile,
    };
    writeResult(o.dir, result, SUMMARY_FIELDS);
    return result;
  } catch (err) {
    const e = err as Error & { skip?: boolean };
    if (e.skip) {
      const r: ChaosResult = {
        ...base,
        status: 'skipped',
        reason: `synod node refused --protocol ${o.protocol}: ${e.message.split('\n').slice(-3).join(' ')}`,
      };
      writeResult(o.dir, r, SUMMARY_FIELDS);
      return r;
    }
    const r: ChaosResult = { ...base, status: 'error', reason: e.stack ?? String(e) };
    if (existsSync(o.dir)) writeResult(o.dir, r, SUMMARY_FIELDS);
    return r;
  } finally {
    process.removeListener('exit', onExit);
    const left = cluster;
    cleanup();
    await left?.closeProbe();
    for (const p of left?.procs.values() ?? []) p.log.end();
  }
}

/**
 * Applies one fault for its duration, then undoes it: the victims are the schedule's pick
 * (faults.ts), except where the leader decides them (kill-leader, pause-leader,
 * partition-leader, and the one-way cut, which is from the leader) and for membership.
 */
async function applyFault(
  c: ChaosCluster,
  net: ChaosNet,
  f: ScheduledFault,
  note: NoteFn,
  protocol: string,
  failures: string[],
): Promise<void> {
  const ids = c.ids;
  const order = shuffled(ids, f.pick);
  const victim = order[0] as string;
  const leaderOr = async (fallback: string) => (await c.leader(1000))?.id ?? fallback;
  switch (f.kind) {
    case 'kill-leader':
      return runFault(c, net, f, { do: 'kill', node: await leaderOr(victim) }, note);
    case 'pause-leader':
      return runFault(c, net, f, { do: 'pause', node: await leaderOr(victim) }, note);
    case 'partition-leader': {
      const l = await leaderOr(victim);
      return runFault(
        c,
        net,
        f,
        { do: 'partition', groups: [[l], ids.filter((x) => x !== l)] },
        note,
      );
    }
    case 'partition-one-way': {
      const [a, b] = [order[0] as string, order[1] as string];
      const l = await leaderOr(a);
      const from = l === b ? a : l;
      // The leader's messages stop reaching one follower, whose own messages still arrive.
      const to = from === b ? a : b;
      return runFault(c, net, f, { do: 'drop-from', from, to }, note);
    }
    case 'membership':
      return membershipFault(c, f, order, note, protocol, failures);
    default: {
      const a = victimsFromPick(f, ids);
      if (!a) throw new Error(`no victims for nemesis ${f.kind}`);
      return runFault(c, net, f, a, note);
    }
  }
}

/** How long a removed member that is running may take to exit by itself. */
const REMOVED_EXIT_BOUND_MS = 30_000;

/**
 * Removes a member (`node.remove` through the leader, with the admin secret's proof), retires
 * it as an operator would (kill, wipe its data directory), and after the fault's duration
 * adds it back as a new member (`synod node --join`, learner then voter). A removed member
 * that was running must exit by itself (exit 0, SYNOD_ERR_NODE_REMOVED) within
 * REMOVED_EXIT_BOUND_MS, else the run fails: a removed node that lingers campaigns for ever
 * and serves nothing. A removal the cluster refuses (no leader, a quorum at risk while another
 * fault lingers) is noted, not forced. Multi-Paxos membership is static: skipped, saying so.
 */
async function membershipFault(
  c: ChaosCluster,
  f: ScheduledFault,
  order: string[],
  note: NoteFn,
  protocol: string,
  failures: string[],
): Promise<void> {
  if (protocol !== 'raft') {
    note({ event: 'skip', kind: f.kind, why: `${protocol} membership is static` });
    await sleep(f.durationMs);
    return;
  }
  const start = (extra: Record<string, unknown>) =>
    note({ event: 'start', kind: f.kind, durationMs: f.durationMs, ...extra });
  const end = (extra: Record<string, unknown>) => note({ event: 'end', kind: f.kind, ...extra });
  const l = await c.leader(1000);
  if (!l) {
    note({ event: 'skip', kind: f.kind, why: 'no leader to ask' });
    await sleep(f.durationMs);
    return;
  }
  const v = order.find((x) => x !== l.id) as string;
  let removed: { ok: boolean; message: string };
  c.proc(v).removing = true;
  try {
    removed = await c.ask<{ ok: boolean; message: string }>(
      `${l.id}/admin`,
      {
        type: 'node.remove',
        id: v,
        ...makeAdminProof(ADMIN_SECRET, 'synod', 'node.remove', v, Date.now()),
      },
      30_000,
    );
  } catch (err) {
    removed = { ok: false, message: `no answer: ${(err as Error).message}` };
  }
  if (!removed.ok) {
    c.proc(v).removing = false;
    note({ event: 'skip', kind: f.kind, node: v, why: `removal refused: ${removed.message}` });
    await sleep(f.durationMs);
    return;
  }
  start({ node: v, leader: l.id, removed: removed.message });
  // A running member that was removed exits by itself (lib/node/removal-watch.ts); one that
  // is down or paused by another fault cannot, and is retired regardless.
  const t1 = monotonicNow();
  const wasRunning = c.proc(v).state === 'running';
  const exited = wasRunning && (await c.exitsWithin(v, REMOVED_EXIT_BOUND_MS));
  note({
    event: 'removed-node',
    node: v,
    exitedByItself: exited,
    ...(wasRunning ? { afterMs: Math.round(monotonicNow() - t1) } : { state: c.proc(v).state }),
  });
  if (wasRunning && !exited) {
    // What the node that stayed believes (for the report: which removal signal it missed).
    const st = await c.status(v, 3000);
    const seen = st
      ? `it reported role ${st.role}, leader ${st.leader ?? 'none'}, term ${st.term}, commit ${st.commitIndex}, configuration at ${st.configIndex ?? '?'} with voters ${st.voters.join(',')}${st.learners.length > 0 ? ` and learners ${st.learners.join(',')}` : ''}`
      : 'it did not answer a status request';
    note({ event: 'removed-node-stayed', node: v, status: st ?? null });
    failures.push(
      `${v} was removed from the cluster while running and did not exit by itself within ${REMOVED_EXIT_BOUND_MS} ms; ${seen}; last lines: ${c.proc(v).tail.slice(-3).join(' | ')}`,
    );
  }
  await c.retire(v);
  c.proc(v).removing = false;
  await sleep(f.durationMs);
  const via = (await c.leader(1000)) ?? l;
  c.start(v, { join: `${via.id}=${c.url(via.id)}` });
  const t0 = monotonicNow();
  let voter = false;
  while (!voter && monotonicNow() - t0 < 30_000) {
    await sleep(500);
    const s = await c.leader(1000);
    voter = s?.voters.includes(v) ?? false;
  }
  end({
    node: v,
    rejoined: voter ? 'a voter again' : 'not a voter yet (joining continues)',
    afterMs: Math.round(monotonicNow() - t0),
  });
}
