/** A WebSocket client collecting JSON frames; `next(pred)` waits (bounded) for a matching one. */
import { WebSocket } from 'ws';

export type Frame = Record<string, unknown>;

export function jsonFeed(url: string) {
  const ws = new WebSocket(url);
  const frames: Frame[] = [];
  /** The newest frame of each kind, kept even when the bounded buffer has dropped it. */
  const latest = new Map<unknown, Frame>();
  const waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  ws.on('message', (d) => {
    const f = JSON.parse(d.toString()) as Frame;
    frames.push(f);
    latest.set(f.kind, f);
    if (frames.length > 1000) frames.shift();
    for (const w of [...waiters])
      if (w.pred(f)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(f);
      }
  });
  const next = (pred: (f: Frame) => boolean, ms = 5_000) => {
    const found = frames.find(pred);
    if (found) {
      frames.splice(frames.indexOf(found), 1);
      return Promise.resolve(found);
    }
    return new Promise<Frame>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no matching frame in time')), ms);
      waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(timer);
          frames.splice(frames.indexOf(f), 1);
          resolve(f);
        },
      });
    });
  };
  const opened = new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  /** The newest frame of `kind` received (matched by `next` or not), for failure messages. */
  const last = (kind: string) => latest.get(kind);
  return { ws, frames, next, opened, last };
}
