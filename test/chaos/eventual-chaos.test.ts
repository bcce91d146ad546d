/**
 * The leaderless store under chaos (test/chaos/harness/eventual-run.ts): five
 * `synod node --protocol gossip` processes in network namespaces, seeded kills, pauses,
 * partitions, loss and slow links while two client processes put, read and increment; after the
 * heal the replicas must converge within the bound, no acknowledged write may be lost, counters
 * must equal the acknowledged increments (up to the indeterminate ones), writes must be served
 * and memory bounded. A short setting for CI: 1 minute of workload by default
 * (SYNOD_CHAOS_EVENTUAL_MINUTES for another length, SYNOD_CHAOS_SEED for a fixed seed); longer
 * runs through `npm run chaos -- --protocol eventual --minutes M`. Skips, with the reason, when
 * not root or without namespaces/iptables; never passes without having run.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runEventualChaos } from './harness/eventual-run.js';
import { netUnavailableReason } from './harness/net.js';

const minutes = Number(process.env.SYNOD_CHAOS_EVENTUAL_MINUTES ?? '1');
const seed = process.env.SYNOD_CHAOS_SEED
  ? Number(process.env.SYNOD_CHAOS_SEED) + 2
  : Math.floor(Math.random() * 1e6);

t.test(`chaos: eventual, ${minutes} min, seed ${seed}`, async (t) => {
  const unavailable = netUnavailableReason();
  if (unavailable) {
    t.skip(`SKIPPED chaos test (eventual): ${unavailable}`, () => {});
    return;
  }
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-chaos-eventual-'));
  const r = await runEventualChaos({
    seed,
    durationMs: Math.round(minutes * 60_000),
    protocol: 'eventual',
    dir,
    log: (l) => t.comment(`eventual: ${l}`),
  });
  if (r.status === 'skipped') {
    t.skip(`SKIPPED chaos test (eventual): ${r.reason}`, () => {});
    return;
  }
  t.comment(`results in ${dir} (summary.txt, history.jsonl, final.json)`);
  t.equal(
    r.status,
    'pass',
    `${r.reason}\n${r.failures.join('\n')}\nreproduce: npx tsx scripts/chaos.ts --minutes ${minutes} --seed ${seed} --protocol eventual`,
  );
  if (r.status === 'error') return;
  const ops = r.operations as { ok: number };
  t.ok(ops.ok > 50, `clients completed operations through the faults (${JSON.stringify(ops)})`);
  const ev = r.eventual as { writesAcked: number };
  t.ok(ev.writesAcked > 20, `acknowledged writes were accounted for (${JSON.stringify(ev)})`);
  const faults = r.faults as string[];
  t.ok(faults.length > 0, `faults were injected: ${faults.join(', ')}`);
  t.comment(
    `converged ${String(r.convergedAfterMs)} ms after healing; first write ${String(r.writeAfterHealMs)} ms; memory ${JSON.stringify(r.memory)}`,
  );
});
