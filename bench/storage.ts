/**
 * `npm run bench -- storage [--runs=N] [--ms=MS] [--dir=DIR]`
 *
 * Durable appends per second through FileLogStore with 1, 16 and 256 concurrent
 * appenders (each appender: append one 100-byte record, await it, repeat), against a raw
 * loop that writes the same framed bytes and calls fdatasync once per record, measured in
 * the same run on the same file system. The ratio shows group commit at work: the target is
 * ≥ 20× the one-record-per-sync rate at 256 appenders.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { FileLogStore, FRAME_OVERHEAD } from '../lib/storage/file-log.js';
import { type BenchMain, loadNote, type Measurement, report, summarize } from './harness.js';

const RECORD_BYTES = 100;

/** `--name=value` (the bench dispatcher takes bare words for benchmark names). */
function argStr(argv: string[], name: string): string | undefined {
  const hit = argv.find((a) => a.startsWith(`${name}=`));
  return hit === undefined ? undefined : hit.slice(name.length + 1);
}

function arg(argv: string[], name: string, fallback: number): number {
  const v = argStr(argv, name);
  const n = v === undefined ? fallback : Number(v);
  if (!Number.isFinite(n) || n <= 0) throw new Error(`${name} must be a positive number`);
  return n;
}

/** Raw baseline: write one framed record, fdatasync, repeat. Records per second. */
async function rawLoop(dir: string, ms: number): Promise<number> {
  const file = path.join(dir, `raw-${process.pid}.bin`);
  const fh = await fs.open(file, 'w');
  const frame = Buffer.alloc(RECORD_BYTES + FRAME_OVERHEAD, 7);
  let n = 0;
  let pos = 0;
  const start = performance.now();
  try {
    while (performance.now() - start < ms) {
      await fh.write(frame, 0, frame.length, pos);
      await fh.datasync();
      pos += frame.length;
      n++;
    }
  } finally {
    await fh.close();
    await fs.rm(file, { force: true });
  }
  return n / ((performance.now() - start) / 1000);
}

/** `appenders` concurrent loops of append-one-and-await. Durable appends per second. */
async function storeLoop(
  dir: string,
  appenders: number,
  ms: number,
): Promise<{ rate: number; perSync: number }> {
  const logDir = path.join(dir, `log-${appenders}-${process.pid}`);
  const log = await FileLogStore.open(logDir);
  const data = new Uint8Array(RECORD_BYTES).fill(42);
  let next = log.lastIndex() + 1;
  let done = 0;
  const start = performance.now();
  const syncs0 = log.syncCount;
  const worker = async () => {
    while (performance.now() - start < ms) {
      await log.append([{ index: next++, term: 1, type: 'normal', data }]);
      done++;
    }
  };
  await Promise.all(Array.from({ length: appenders }, worker));
  const secs = (performance.now() - start) / 1000;
  const syncs = log.syncCount - syncs0;
  await log.close();
  await fs.rm(logDir, { recursive: true, force: true });
  return { rate: done / secs, perSync: done / Math.max(1, syncs) };
}

export const main: BenchMain = async (argv) => {
  const runs = arg(argv, '--runs', 3);
  const ms = arg(argv, '--ms', 1500);
  const base = argStr(argv, '--dir') ?? os.tmpdir();
  const dir = await fs.mkdtemp(path.join(base, 'synod-bench-storage-'));
  const levels = [1, 16, 256];
  const raw: number[] = [];
  const results = new Map<number, { rates: number[]; perSync: number[] }>();
  for (const c of levels) results.set(c, { rates: [], perSync: [] });
  try {
    // Interleave so that background load affects the baseline and the store alike.
    for (let r = 0; r < runs; r++) {
      raw.push(await rawLoop(dir, ms));
      for (const c of levels) {
        const res = await storeLoop(dir, c, ms);
        results.get(c)?.rates.push(res.rate);
        results.get(c)?.perSync.push(res.perSync);
      }
    }
  } finally {
    await fs.rm(dir, { recursive: true, force: true });
  }
  const measurements: Measurement[] = [
    summarize('raw write+fdatasync per 100-byte record', 'records/s', 'higher', raw),
  ];
  for (const c of levels) {
    const res = results.get(c) as { rates: number[]; perSync: number[] };
    const m = summarize(
      `FileLogStore durable appends, ${c} concurrent appender${c === 1 ? '' : 's'}`,
      'appends/s',
      'higher',
      res.rates,
      { name: 'raw write+fdatasync per record', runs: raw },
      c === 256 ? '≥ 20× baseline' : undefined,
    );
    m.extra = { recordsPerSync: res.perSync.map((x) => Number(x.toFixed(1))) };
    measurements.push(m);
  }
  return report('storage', measurements, [
    `${RECORD_BYTES}-byte records (${RECORD_BYTES + FRAME_OVERHEAD} bytes framed); ${runs} runs of ${ms} ms each, interleaved; files in ${base}`,
    loadNote(),
  ]);
};
