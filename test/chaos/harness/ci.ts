/**
 * The CI chaos test (test/chaos/chaos.test.ts): the 3-minute run of each protocol, both
 * at once in one test file (each in its own namespaces and subnet, see net.ts), so that the
 * two runs hold one of tap's parallel slots for about four minutes instead of two.
 * Another length with SYNOD_CHAOS_MINUTES, a fresh seed per protocol unless SYNOD_CHAOS_SEED;
 * SYNOD_CHAOS_PROTOCOLS=raft (or paxos) runs one.
 * Skips, with the reason, when not root, without namespaces/iptables, or when the node
 * refuses the protocol; never passes without having run.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { netUnavailableReason } from './net.js';
import { type ChaosResult, runChaos } from './run.js';

export function chaosTests(protocols: readonly string[]): void {
  const minutes = Number(process.env.SYNOD_CHAOS_MINUTES ?? '3');
  const durationMs = Math.round(minutes * 60_000);
  const fixedSeed = process.env.SYNOD_CHAOS_SEED;
  const unavailable = netUnavailableReason();
  const runs = protocols.map((protocol, i) => {
    const seed = fixedSeed ? Number(fixedSeed) + i : Math.floor(Math.random() * 1e6);
    const dir = mkdtempSync(path.join(tmpdir(), `synod-chaos-${protocol}-`));
    // Started together; each test below waits for its own run.
    const result: Promise<ChaosResult | Error> | undefined = unavailable
      ? undefined
      : runChaos({
          seed,
          durationMs,
          protocol,
          dir,
          log: (l) => t.comment(`${protocol}: ${l}`),
        }).catch((e: unknown) => (e instanceof Error ? e : new Error(String(e))));
    return { protocol, seed, dir, result };
  });
  for (const run of runs) {
    const { protocol, seed, dir } = run;
    t.test(`chaos: ${protocol}, ${minutes} min, seed ${seed}`, async (t) => {
      if (!run.result) {
        t.skip(`SKIPPED chaos test (${protocol}): ${unavailable}`, () => {});
        return;
      }
      const r = await run.result;
      if (r instanceof Error) throw r;
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
      const b = r.backups as { taken: number; failed: string[] };
      t.ok(
        b.taken >= 1,
        `a backup was taken during faults (${b.taken} taken; failed attempts: ${b.failed.join(' / ') || 'none'})`,
      );
      t.comment(
        `first write after healing: ${String(r.writeAfterHealMs)} ms; memory: ${JSON.stringify(r.memory)}`,
      );
    });
  }
}
