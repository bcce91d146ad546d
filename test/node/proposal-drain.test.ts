/**
 * DrainingLog (lib/node/proposal-drain.ts) on a virtual clock, against a log whose proposals
 * settle when the test says so: the shutdown of a node waits for in-flight writes (and writes
 * it forwarded to the leader), refuses new ones as definitely not applied, and gives up at its
 * bound. test/cli/node-sigterm.test.ts checks the same with real processes.
 */
import { Subject } from 'rxjs';
import t from 'tap';
import { DrainingLog, QUIET_MS } from '../../lib/node/proposal-drain.js';
import {
  type AppliedEntry,
  type Command,
  ProposeError,
  type ProposeResult,
  type ReplicatedLog,
} from '../../lib/replicated-log.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import { advance } from '../helpers/virtual-time.js';

/** A log whose proposals wait until `settle` (or `notLeader`) is called for them. */
class HeldLog implements ReplicatedLog<string, string> {
  readonly nodeId = 'n1';
  readonly leader$ = new Subject<string | undefined>();
  readonly commitIndex$ = new Subject<number>();
  readonly appliedIndex$ = new Subject<number>();
  readonly applied$ = new Subject<AppliedEntry<string, string>>();
  readonly held: {
    command: Command<string>;
    resolve: (r: ProposeResult<string>) => void;
    reject: (e: unknown) => void;
  }[] = [];
  propose(command: Command<string>): Promise<ProposeResult<string>> {
    return new Promise((resolve, reject) => this.held.push({ command, resolve, reject }));
  }
  readBarrier(): Promise<number> {
    return Promise.resolve(0);
  }
  settle(i: number): void {
    this.held[i]?.resolve({ index: i + 1, term: 1, result: 'ok' });
  }
  notLeader(i: number): void {
    this.held[i]?.reject(new ProposeError('NotLeader', 'not the leader', 'n2'));
  }
}

const cmd = (seq: number): Command<string> => ({ clientId: 'c', seq, op: `w${seq}` });

t.test('witnessed reads pass through, and only for a log that has them', async (t) => {
  const clock = new VirtualClock();
  t.equal(new DrainingLog(new HeldLog(), clock).witnessRead, undefined, 'a log without them');
  const keys: string[] = [];
  const opts: unknown[] = [];
  class WitnessLog extends HeldLog {
    witnessRead(key: string): void {
      keys.push(key);
    }
    override readBarrier(o?: unknown): Promise<number> {
      opts.push(o);
      return Promise.resolve(7);
    }
  }
  const d = new DrainingLog(new WitnessLog(), clock);
  d.witnessRead?.('k1');
  t.same(keys, ['k1']);
  t.equal(await d.readBarrier({ timeoutMs: 5, witness: 'k2' }), 7);
  t.same(opts, [{ timeoutMs: 5, witness: 'k2' }], 'the witness key reaches the log');
});

t.test('waits for in-flight proposals, then refuses new ones as not applied', async (t) => {
  const clock = new VirtualClock();
  const inner = new HeldLog();
  const log = new DrainingLog(inner, clock);
  const answers: string[] = [];
  for (const seq of [1, 2])
    log.propose(cmd(seq)).then(
      () => answers.push(`ok ${seq}`),
      () => answers.push(`err ${seq}`),
    );
  let report: Awaited<ReturnType<typeof log.drain>> | undefined;
  void log.drain(2000).then((r) => {
    report = r;
  });
  const refused = await log.propose(cmd(3)).catch((e: ProposeError) => e);
  t.ok(refused instanceof ProposeError, 'a new proposal is refused');
  t.equal((refused as ProposeError).code, 'Dropped');
  t.equal((refused as ProposeError).indeterminate, false, 'definitely not applied');
  t.match(
    (refused as ProposeError).message,
    /^SYNOD_ERR_NODE_SHUTTING_DOWN: node n1 is shutting down/,
  );
  await advance(clock, 100);
  t.equal(report, undefined, 'still waiting for the two in flight');
  inner.settle(0);
  await advance(clock, 100);
  t.equal(report, undefined, 'one left');
  inner.settle(1);
  await advance(clock, QUIET_MS + 20);
  t.same(answers, ['ok 1', 'ok 2'], 'both answered with their outcome');
  t.match(report, { inFlight: 2, left: 0, refused: 1 }, 'the report');
  t.ok((report?.tookMs ?? 0) >= 200, 'it waited for them');
});

t.test('bounded: a proposal that never commits is left after maxMs', async (t) => {
  const clock = new VirtualClock();
  const inner = new HeldLog();
  const log = new DrainingLog(inner, clock);
  void log.propose(cmd(1)).catch(() => undefined);
  let report: Awaited<ReturnType<typeof log.drain>> | undefined;
  void log.drain(500).then((r) => {
    report = r;
  });
  await advance(clock, 400);
  t.equal(report, undefined, 'waiting within the bound');
  await advance(clock, 200);
  t.match(report, { inFlight: 1, left: 1, refused: 0 }, 'gave up at 500 ms with one left');
});

t.test('a write forwarded to the leader is waited for until it is applied here', async (t) => {
  const clock = new VirtualClock();
  const inner = new HeldLog();
  const log = new DrainingLog(inner, clock);
  void log.propose(cmd(7), { timeoutMs: 3000 }).catch(() => undefined);
  inner.notLeader(0); // the KV service forwards it to the leader
  await advance(clock, 1);
  t.equal(log.inFlight, 1, 'the forward counts as in flight');
  let report: Awaited<ReturnType<typeof log.drain>> | undefined;
  void log.drain(2000).then((r) => {
    report = r;
  });
  await advance(clock, 300);
  t.equal(report, undefined, 'waiting for the forwarded write');
  inner.applied$.next({ index: 1, term: 1, command: cmd(7), result: 'ok' });
  await advance(clock, QUIET_MS + 20);
  t.match(report, { inFlight: 1, left: 0 }, 'done once it was applied here');
});

t.test('nothing in flight: the drain ends after the quiet period', async (t) => {
  const clock = new VirtualClock();
  const log = new DrainingLog(new HeldLog(), clock);
  let report: Awaited<ReturnType<typeof log.drain>> | undefined;
  void log.drain(2000).then((r) => {
    report = r;
  });
  await advance(clock, QUIET_MS + 20);
  t.match(report, { inFlight: 0, left: 0, refused: 0 });
  t.ok((report?.tookMs ?? 0) < 200, 'without waiting for the bound');
});
