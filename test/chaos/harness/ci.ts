/**
 * The CI chaos test of one protocol (test/chaos/chaos.test.ts, chaos-paxos.test.ts): the
 * issue's 3-minute run by default, another length with SYNOD_CHAOS_MINUTES, a fresh seed unless
 * SYNOD_CHAOS_SEED.
 * Skips, with the reason, when not root, without namespaces/iptables, or when the node
 * refuses the protocol; never passes without having run.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { netUnavailableReason } from './net.js';
import { runChaos } from './run.js';

export function chaosTest(protocol: string): void {
  const minutes = Number(process.env.SYNOD_CHAOS_MINUTES ?? '3');
  const durationMs = Math.round(minutes * 60_000);
  const seed = Number(process.env.SYNOD_CHAOS_SEED ?? String(Math.floor(Math.random() * 1e6)));
  t.test(`chaos: ${protocol}, ${minutes} min, seed ${seed}`, async (t) => {
    const unavailable = netUnavailableReason();
    if (unavailable) {
      t.skip(`SKIPPED chaos test (${protocol}): ${unavailable}`, () => {});
      return;
    }
    const dir = mkdtempSync(path.join(tmpdir(), `synod-chaos-${protocol}-`));
    const r = await runChaos({ seed, durationMs, protocol, dir, log: (l) => t.comment(l) });
    if (r.status === 'skipped') {
      t.skip(`SKIPPED chaos test (${protocol}): ${r.reason}`, () => {});
      return;
    }
    t.comment(`results in ${dir} (summary.txt, history.jsonl, report.html)`);
    const how = `reproduce: npx tsx scripts/chaos.ts --minutes ${minutes} --seed ${seed} --protocol ${protocol}`;
    t.equal(
      r.status,
      'pass',
      `${r.reason}\n${r.failures.join('\n')}\n${how}\nreport: ${r.report ?? '(none)'}`,
    );
    if (r.status === 'error') return;
    t.equal(
      (r.checker as { result: string }).result,
      'linearizable',
      'the history is linearizable',
    );
    const ops = r.operations as { ok: number; fail: number; info: number };
    t.ok(ops.ok > 50, `clients completed operations through the faults (${JSON.stringify(ops)})`);
    const faults = r.faults as string[];
    t.ok(faults.length > 0, `faults were injected: ${faults.join(', ')}`);
    if (protocol === 'raft') {
      const b = r.backups as { taken: number; failed: string[] };
      t.ok(
        b.taken >= 1,
        `a backup was taken during faults (${b.taken} taken; failed attempts: ${b.failed.join(' / ') || 'none'})`,
      );
    }
    t.comment(
      `first write after healing: ${String(r.writeAfterHealMs)} ms; memory: ${JSON.stringify(r.memory)}`,
    );
  });
}
