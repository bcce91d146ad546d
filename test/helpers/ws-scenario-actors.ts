/** Actors used by the shared transport scenarios (test/transport-scenarios). */
import { Actor, type Replies, type Terminated } from '../../lib/actor.js';

export type EchoMsg =
  | ({ type: 'echo'; text: string } & Replies<string>)
  | { type: 'record'; from: string; n: number }
  | ({ type: 'recorded'; from: string } & Replies<number[]>);

/** Answers `echo`, and records `record` messages per sender in arrival order. */
export class Echo extends Actor<EchoMsg> {
  private readonly seen = new Map<string, number[]>();
  receive(msg: EchoMsg): void {
    switch (msg.type) {
      case 'echo':
        this.ctx.reply(msg, `${this.ctx.nodeId}:${msg.text}`);
        return;
      case 'record': {
        const list = this.seen.get(msg.from) ?? [];
        list.push(msg.n);
        this.seen.set(msg.from, list);
        return;
      }
      case 'recorded':
        this.ctx.reply(msg, this.seen.get(msg.from) ?? []);
        return;
    }
  }
}

export type WatcherMsg =
  | { type: 'watch'; target: string }
  | Terminated
  | ({ type: 'terminations' } & Replies<{ address: string; reason: string }[]>);

/** Watches what it is told to and records every `terminated` it receives. */
export class Watcher extends Actor<WatcherMsg> {
  private readonly got: { address: string; reason: string }[] = [];
  receive(msg: WatcherMsg): void {
    switch (msg.type) {
      case 'watch':
        this.ctx.watch(msg.target);
        return;
      case 'terminated':
        this.got.push({ address: msg.address, reason: msg.reason });
        return;
      case 'terminations':
        this.ctx.reply(msg, [...this.got]);
        return;
    }
  }
}

/** Sends `count` numbered `record` messages to `to` from inside an actor. */
export class Sender extends Actor<{ type: 'go'; to: string; count: number }> {
  receive(msg: { type: 'go'; to: string; count: number }): void {
    for (let n = 0; n < msg.count; n++) {
      this.ctx.send(msg.to, { type: 'record', from: this.ctx.self, n });
    }
  }
}
