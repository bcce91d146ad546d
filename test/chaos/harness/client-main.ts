/**
 * What the chaos client processes (client-proc.ts, eventual-client.ts) share: reading their
 * arguments, the SIGTERM stop flag, finishing (history closed, counts printed, disconnected)
 * and the entry point that skips when tap runs the file without arguments.
 */
import type { HistoryRecorder } from '../../../lib/history/recorder.js';

/** `--name value` from the command line; without a value and a fallback, a clear error. */
export function argReader(program: string): (name: string, fallback?: string) => string {
  return (name, fallback) => {
    const i = process.argv.indexOf(`--${name}`);
    const v = i >= 0 ? process.argv[i + 1] : fallback;
    if (v === undefined) throw new Error(`${program}: --${name} is required`);
    return v;
  };
}

/** Becomes true at SIGTERM: the workers finish their operation in flight and stop. */
export function stopOnSigterm(): { readonly stopping: boolean } {
  const flag = { stopping: false };
  process.once('SIGTERM', () => {
    flag.stopping = true;
  });
  return flag;
}

export interface ClientCounts {
  ok: number;
  fail: number;
  info: number;
}

/** Closes the history, prints the counts, disconnects (2 s at most) and exits 0. */
export async function finishClient(
  rec: HistoryRecorder,
  counts: ClientCounts,
  disconnect: () => Promise<unknown>,
): Promise<void> {
  await rec.close();
  process.stdout.write(`${JSON.stringify({ done: true, ...counts })}\n`);
  await Promise.race([disconnect(), new Promise((r) => setTimeout(r, 2000))]);
  process.exit(0);
}

/**
 * Runs `main` when the process has `--peers`; otherwise (tap lists every .ts under test/) prints
 * a TAP skip naming the runner that starts it. A failure prints its stack and exits 2.
 */
export function clientEntry(program: string, what: string, main: () => Promise<void>): void {
  if (!process.argv.includes('--peers')) {
    process.stdout.write(`1..0 # SKIP ${what}\n`);
    return;
  }
  main().catch((err) => {
    process.stderr.write(`${program} failed: ${(err as Error).stack ?? err}\n`);
    process.exit(2);
  });
}
