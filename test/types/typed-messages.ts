/**
 * Compile-time tests of typed messages. tap does not run this file (package.json excludes
 * test/types); `npm run typecheck` (part of `npm test`) compiles it, and every
 * `@ts-expect-error` below that stops being an error fails the type-check (TS2578). So a
 * change that lets a wrong message, a wrong field or a wrong reply type through breaks the
 * build. Nothing here is executed: the checks live in functions that are never called.
 */
import { Actor, type ActorRef, type Replies, type Terminated } from '../../lib/actor.js';
import type { ActorSystem } from '../../lib/actor-system.js';

type CounterMsg =
  | { type: 'inc'; by: number }
  | ({ type: 'get' } & Replies<number>)
  | ({ type: 'name' } & Replies<string>);

class Counter extends Actor<CounterMsg> {
  n = 0;
  receive(msg: CounterMsg | Terminated): void {
    switch (msg.type) {
      case 'inc':
        this.n += msg.by;
        // timers deliver the actor's own messages only
        this.ctx.timers.once('again', 10, { type: 'inc', by: 1 });
        // @ts-expect-error a timer message outside the union
        this.ctx.timers.once('bad', 10, { type: 'reset' });
        // @ts-expect-error a timer message with a wrong field type
        this.ctx.timers.repeat('bad', 10, { type: 'inc', by: '1' });
        return;
      case 'get':
        this.ctx.reply(msg, this.n);
        // @ts-expect-error the reply to `get` is a number
        this.ctx.reply(msg, 'a string');
        return;
      case 'name':
        this.ctx.reply(msg, 'counter');
        // @ts-expect-error the reply to `name` is a string
        this.ctx.reply(msg, 42);
        return;
      case 'terminated':
        return;
    }
  }
}

export function refsAreTyped(system: ActorSystem): void {
  const ref: ActorRef<CounterMsg> = system.spawn('counter', new Counter());
  ref.tell({ type: 'inc', by: 1 });
  // @ts-expect-error a message type outside the union
  ref.tell({ type: 'reset' });
  // @ts-expect-error a wrong field type
  ref.tell({ type: 'inc', by: '1' });
  // @ts-expect-error a missing field
  ref.tell({ type: 'inc' });

  const count: Promise<number> = ref.ask({ type: 'get' });
  const name: Promise<string> = ref.ask({ type: 'name' }, 1_000);
  // @ts-expect-error the reply to `get` is a number, not a string
  const wrongReply: Promise<string> = ref.ask({ type: 'get' });
  // @ts-expect-error `inc` is not a request (it declares no Replies<R>)
  ref.ask({ type: 'inc', by: 1 });
  // @ts-expect-error a request outside the union
  ref.ask({ type: 'other' });

  // lookup and refFor are typed by the union they are given
  const found = system.lookup<CounterMsg, undefined>('n/counter');
  // @ts-expect-error a message outside the union, through lookup
  found?.tell({ type: 'reset' });
  const remote = system.refFor<CounterMsg>('other-node/counter');
  remote.tell({ type: 'inc', by: 2 });
  // @ts-expect-error a message outside the union, through refFor
  remote.tell({ type: 'reset' });
  const remoteName: Promise<string> = remote.ask({ type: 'name' });
  // @ts-expect-error the reply to `name` is a string, through refFor
  const remoteWrong: Promise<number> = remote.ask({ type: 'name' });

  // The address-typed calls check the message shape and infer the reply from the message,
  // but NOT that the target accepts it (an address carries no type; README "Typed messages").
  system.send('n/counter', { type: 'anything-at-all' });
  // @ts-expect-error still a message: it needs a string `type`
  system.send('n/counter', { kind: 'inc' });
  const viaSystem: Promise<number> = system.ask('n/counter', {
    type: 'get',
  } as CounterMsg & { type: 'get' });
  // @ts-expect-error the reply type follows the request's Replies<R>
  const viaSystemWrong: Promise<string> = system.ask('n/counter', {
    type: 'get',
  } as CounterMsg & { type: 'get' });

  void [count, name, wrongReply, remoteName, remoteWrong, viaSystem, viaSystemWrong];
}
