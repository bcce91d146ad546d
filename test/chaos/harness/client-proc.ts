/**
 * A chaos client process: W workers, each a KV client with its own session, running read /
 * write / cas on a small key set until the deadline, each recording into one Jepsen history
 * file (appended synchronously event by event, so SIGKILL loses nothing recorded).
 *
 *   node --import tsx client-proc.ts --peers a=ws://…,b=… --secret S --workers 3 --keys 5
 *     --duration-ms 60000 --out history-0.jsonl --process-base 0 --seed 7
 *
 * Times are CLOCK_MONOTONIC milliseconds (process.hrtime), which every process on the
 * machine shares, so the histories of several client processes merge in real-time order.
 */

import { HistoryRecorder } from '../../../lib/history/recorder.js';
import { KvClient } from '../../../lib/kv-client/client.js';
import { connect } from '../../../lib/kv-client/connect.js';
import { Random } from '../../../lib/random.js';
import { argReader, clientEntry, finishClient, stopOnSigterm } from './client-main.js';
import { monotonicNow } from './clock.js';

const monotonic = { now: monotonicNow };

const arg = argReader('client-proc');

async function main(): Promise<void> {
  const peers = arg('peers').split(',');
  const workers = Number(arg('workers', '3'));
  const keys = Number(arg('keys', '5'));
  const durationMs = Number(arg('duration-ms'));
  const base = Number(arg('process-base', '0'));
  const seed = Number(arg('seed', '1'));
  const timeoutMs = Number(arg('op-timeout-ms', '4000'));
  const rec = HistoryRecorder.toFile(arg('out'), { clock: monotonic, keep: false });
  const first = await connect(peers, { secret: arg('secret'), timeoutMs, attemptTimeoutMs: 1000 });
  const random = new Random(seed);
  process.stdout.write(`${JSON.stringify({ ready: true })}\n`);
  const stopAt = monotonic.now() + durationMs;
  const stop = stopOnSigterm();
  const counts = { ok: 0, fail: 0, info: 0 };
  const worker = async (w: number): Promise<void> => {
    const p = base + w;
    const kv =
      w === 0
        ? first
        : new KvClient({
            system: first.system,
            nodes: first.nodes,
            timeoutMs,
            attemptTimeoutMs: 1000,
          });
    const r = random.fork();
    let n = 0;
    const last = new Map<string, string | null>();
    while (!stop.stopping && monotonic.now() < stopAt) {
      const key = `k${r.int(keys)}`;
      const x = r.next();
      if (x < 0.4) {
        const h = rec.invoke(p, 'read', key);
        const res = await kv.get(key, { level: 'strong' });
        if (res.outcome === 'ok') {
          h.ok(res.value.value);
          last.set(key, res.value.value);
          counts.ok++;
        } else {
          // A read changes nothing: an unknown read is as good as a failed one.
          h.fail(res.error.code);
          counts.fail++;
        }
      } else if (x < 0.75) {
        const v = `${p}.${n++}`;
        const h = rec.invoke(p, 'write', key, v);
        const res = await kv.put(key, v);
        if (res.outcome === 'ok') {
          h.ok();
          last.set(key, v);
          counts.ok++;
        } else if (res.outcome === 'failed') {
          h.fail(res.error.code);
          counts.fail++;
        } else {
          h.info(res.error.code);
          counts.info++;
        }
      } else {
        const from = last.get(key) ?? null;
        const to = `${p}.${n++}`;
        const h = rec.invoke(p, 'cas', key, [from, to]);
        const res = await kv.cas(key, { value: from }, to);
        if (res.outcome === 'ok') {
          if (res.value.t === 'cas' && !res.value.succeeded) h.ok(false);
          else {
            h.ok();
            last.set(key, to);
          }
          counts.ok++;
        } else if (res.outcome === 'failed') {
          h.fail(res.error.code);
          counts.fail++;
        } else {
          h.info(res.error.code);
          counts.info++;
        }
      }
    }
  };
  await Promise.all(Array.from({ length: workers }, (_, w) => worker(w)));
  await finishClient(rec, counts, () => first.disconnect());
}

clientEntry('client-proc', 'the chaos client process, started by test/chaos/harness/run.ts', main);
