/**
 * The files both chaos runners (run.ts, eventual-run.ts) write the same way: the secrets the
 * nodes start with, JSON lines (nemesis.jsonl, history.jsonl), and the verdict as result.json
 * and summary.txt.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { ChaosResult } from './run.js';

/** The cluster secret of the nodes and the clients. */
export const SECRET = 'chaos-test-secret-of-enough-length-0001';
/** The admin secret the nodes start with, so the membership nemesis may remove members. */
export const ADMIN_SECRET = 'chaos-admin-secret-of-enough-length-01';

/** Creates `dir` and writes both secrets there (mode 0600), returning their files. */
export function writeSecretFiles(dir: string): { secretFile: string; adminSecretFile: string } {
  mkdirSync(dir, { recursive: true });
  const secretFile = path.join(dir, 'cluster.key');
  writeFileSync(secretFile, `${SECRET}\n`, { mode: 0o600 });
  const adminSecretFile = path.join(dir, 'admin.key');
  writeFileSync(adminSecretFile, `${ADMIN_SECRET}\n`, { mode: 0o600 });
  return { secretFile, adminSecretFile };
}

/** Writes one JSON line per item. */
export function writeJsonl(file: string, items: readonly unknown[]): void {
  writeFileSync(file, `${items.map((e) => JSON.stringify(e)).join('\n')}\n`);
}

/**
 * Writes `r` as result.json and, for a person, summary.txt: the status, every failure, the
 * fields named in `fields` that `r` has, the checker's report when it failed, where the
 * history is and how to run the same seed again.
 */
export function writeResult(dir: string, r: ChaosResult, fields: readonly string[]): void {
  writeFileSync(path.join(dir, 'result.json'), `${JSON.stringify(r, null, 2)}\n`);
  const lines = [
    `chaos run: ${r.status.toUpperCase()} (protocol ${r.protocol}, seed ${r.seed})`,
    `reason: ${r.reason}`,
    ...r.failures.map((f) => `  failure: ${f}`),
  ];
  for (const k of fields) if (r[k] !== undefined) lines.push(`${k}: ${JSON.stringify(r[k])}`);
  if (r.status === 'fail' && r.report) lines.push(`checker report: file://${r.report}`);
  lines.push(`history: ${path.join(dir, 'history.jsonl')}`);
  lines.push(
    `reproduce: npx tsx scripts/chaos.ts --minutes ${((r.durationMs as number | undefined) ?? 0) / 60000} --seed ${r.seed} --protocol ${r.protocol}`,
  );
  writeFileSync(path.join(dir, 'summary.txt'), `${lines.join('\n')}\n`);
}
