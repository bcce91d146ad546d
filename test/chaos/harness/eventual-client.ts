/**
 * A chaos client process for the leaderless store (`--protocol eventual`): W workers, each a
 * `LeaderlessKvClient` with its own session (per-key causal contexts), running puts (W =
 * quorum, unique values), reads (R = quorum) and counter increments (`pn/c<i>`, W = quorum) on a
 * small key set until the deadline, recording a Jepsen-style history (appended synchronously,
 * so SIGKILL loses nothing recorded).
 *
 * A put names the causal context it sends (`sent`, the worker's context for the key), and its
 * acknowledgement the context it returned (`ctx`, the sent one joined with the dot the write
 * minted): the verdict (eventual-verdict.ts) reads each acknowledged write's dot from the two,
 * and which later writes superseded it from theirs.
 *
 *   node --import tsx eventual-client.ts --peers a=ws://…,b=… --secret S --workers 3 --keys 5
 *     --counters 2 --duration-ms 60000 --out history-0.jsonl --process-base 0 --seed 7
 */

import { HistoryRecorder } from '../../../lib/history/recorder.js';
import { connectLeaderless } from '../../../lib/kv-client/connect.js';
import { LeaderlessKvClient } from '../../../lib/kv-client/leaderless.js';
import { Random } from '../../../lib/random.js';
import { argReader, clientEntry, finishClient, stopOnSigterm } from './client-main.js';
import { monotonicNow } from './clock.js';

const monotonic = { now: monotonicNow };

const arg = argReader('eventual-client');

async function main(): Promise<void> {
  const peers = arg('peers').split(',');
  const workers = Number(arg('workers', '3'));
  const keys = Number(arg('keys', '5'));
  const counters = Number(arg('counters', '2'));
  const durationMs = Number(arg('duration-ms'));
  const base = Number(arg('process-base', '0'));
  const seed = Number(arg('seed', '1'));
  const timeoutMs = Number(arg('op-timeout-ms', '4000'));
  const rec = HistoryRecorder.toFile(arg('out'), { clock: monotonic, keep: false });
  const first = await connectLeaderless(peers, {
    secret: arg('secret'),
    timeoutMs,
    attemptTimeoutMs: 2500,
  });
  const random = new Random(seed);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const stopAt = monotonic.now() + durationMs;
  const stop = stopOnSigterm();
  const counts = { ok: 0, fail: 0, info: 0 };
  const done = (outcome: 'ok' | 'failed' | 'indeterminate') => {
    counts[outcome === 'ok' ? 'ok' : outcome === 'failed' ? 'fail' : 'info']++;
  };
  const worker = async (w: number): Promise<void> => {
    const p = base + w;
    const kv =
      w === 0
        ? first
        : new LeaderlessKvClient({
            system: first.system,
            nodes: first.nodes,
            timeoutMs,
            attemptTimeoutMs: 2500,
          });
    const r = random.fork();
    let n = 0;
    while (!stop.stopping && monotonic.now() < stopAt) {
      const x = r.next();
      if (x < 0.3) {
        const key = `k${r.int(keys)}`;
        const h = rec.invoke(p, 'read', key);
        const res = await kv.get(key, { r: 'quorum' });
        if (res.outcome === 'ok') h.ok({ siblings: [...res.value.siblings].sort() });
        else h.fail(res.error.code);
        done(res.outcome === 'ok' ? 'ok' : 'failed');
      } else if (x < 0.8) {
        const key = `k${r.int(keys)}`;
        const v = `${p}.${n++}`;
        const sent = kv.contextOf(key) ?? '';
        const h = rec.invoke(p, 'write', key, { v, sent });
        const res = await kv.put(key, v, { w: 'quorum', ...(sent ? { context: sent } : {}) });
        if (res.outcome === 'ok') h.ok({ v, sent, ctx: res.value.context });
        else if (res.outcome === 'failed') h.fail(res.error.code);
        else h.info(res.error.code);
        done(res.outcome);
      } else {
        const key = `pn/c${r.int(counters)}`;
        const h = rec.invoke(p, 'add', key, 1);
        const res = await kv.increment(key, 1, { w: 'quorum' });
        if (res.outcome === 'ok') h.ok(1);
        else if (res.outcome === 'failed') h.fail(res.error.code);
        else h.info(res.error.code);
        done(res.outcome);
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  await finishClient(rec, counts, () => first.disconnect());
}

clientEntry(
  'eventual-client',
  'the eventual chaos client process, started by test/chaos/harness/eventual-run.ts',
  main,
);
