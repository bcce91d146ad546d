/**
 * The joining side of `synod node --join` (lib/node/join-cluster.ts) on a virtual clock:
 * which answers it retries (no leader, not the leader, a node down, a timeout, an old node's
 * text), with growing jittered delays and round-robin over every address, logging each retry;
 * which it does not (a handshake refusal, a refusal of the request itself); and that it gives
 * up after its bound with one line saying what it last heard and what to do.
 */

import { Subject } from 'rxjs';
import t from 'tap';
import type { LogLevel } from '../../lib/logger.js';
import {
  askWatchingLink,
  type JoinClusterOptions,
  JoinError,
  type JoinReply,
  type JoinResult,
  joinCluster,
  parseJoinTargets,
} from '../../lib/node/join-cluster.js';
import { Random } from '../../lib/random.js';
import { VirtualClock } from '../../lib/sim/virtual-clock.js';
import type { LinkStatus } from '../../lib/transport.js';

const ok: JoinReply = { ok: true, message: 'x joined as a voter', members: { a: 'ws://a:1' } };
const refusal = (code: string | undefined, message: string): JoinReply => ({
  ok: false,
  message,
  members: {},
  ...(code !== undefined ? { code } : {}),
});

interface Run {
  clock: VirtualClock;
  asks: { target: string; at: number; timeoutMs: number }[];
  logs: { level: LogLevel; message: string }[];
  result?: JoinResult;
  error?: JoinError;
}

/**
 * Runs joinCluster to completion on a virtual clock. `answer(n, target)` answers the n-th ask
 * (from 1): a reply, an error to throw, or 'hang' (never answers: the attempt's own bound).
 */
async function run(
  answer: (n: number, target: string) => JoinReply | Error | 'hang',
  o: Partial<JoinClusterOptions> = {},
): Promise<Run> {
  const clock = new VirtualClock();
  const r: Run = { clock, asks: [], logs: [] };
  const p = joinCluster({
    self: { id: 'x', url: 'ws://x:1' },
    targets: [
      { id: 'a', url: 'ws://a:1' },
      { id: 'b', url: 'ws://b:1' },
    ],
    clock,
    random: new Random(7),
    logger: { log: (level, message) => r.logs.push({ level, message }) },
    discover: async () => {
      throw new Error('no discovery expected');
    },
    ask: (target, _msg, timeoutMs) => {
      r.asks.push({ target: target.id, at: clock.now(), timeoutMs });
      const a = answer(r.asks.length, target.id);
      if (a === 'hang')
        return new Promise((_, reject) =>
          clock.setTimer(timeoutMs, () =>
            reject(Object.assign(new Error('no reply'), { code: 'SYNOD_ERR_ASK_TIMEOUT' })),
          ),
        );
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    },
    ...o,
  }).then(
    (v) => {
      r.result = v;
    },
    (e: JoinError) => {
      r.error = e;
    },
  );
  let settled = false;
  void p.then(() => {
    settled = true;
  });
  for (let i = 0; i < 100_000 && !settled; i++) {
    await new Promise<void>((res) => setImmediate(res));
    if (!settled && clock.step() === undefined) await new Promise<void>((res) => setImmediate(res));
  }
  await p;
  return r;
}

t.test('retries no-leader and not-leader answers, round-robin, until one adds it', async (t) => {
  const r = await run((n) =>
    n === 1
      ? refusal('SYNOD_ERR_NO_LEADER', 'SYNOD_ERR_NO_LEADER: no leader right now')
      : n === 2
        ? refusal('SYNOD_ERR_NOT_LEADER', 'SYNOD_ERR_NOT_LEADER: forwarded 3 times already')
        : n === 3
          ? refusal('SYNOD_ERR_JOIN_BUSY', 'SYNOD_ERR_JOIN_BUSY: a change is pending')
          : ok,
  );
  t.equal(r.error, undefined, 'no error');
  t.equal(r.result?.attempts, 4, 'four attempts');
  t.same(
    r.asks.map((a) => a.target),
    ['a', 'b', 'a', 'b'],
    'every address in turn',
  );
  t.equal(r.result?.via.id, 'b', 'the success is reported with the node that answered');
  const gaps = r.asks.slice(1).map((a, i) => a.at - (r.asks[i] as { at: number }).at);
  t.ok(
    gaps.every((g, i) => g >= 50 * 2 ** i && g <= 100 * 2 ** i),
    `exponential delays with jitter in [d/2, d]: ${gaps.map((g) => g.toFixed(0)).join(', ')} ms`,
  );
  const retries = r.logs.filter((l) => /^join attempt \d+ failed/.test(l.message));
  t.equal(retries.length, 3, 'each retry is logged');
  t.ok(
    retries.every((l) => l.level === 'info'),
    'at info',
  );
  t.match(retries[0]?.message, /no leader right now.*retrying in \d+ ms through b/);
});

t.test('a timeout, a lost link and an old node’s text are retried too', async (t) => {
  const r = await run((n) =>
    n === 1
      ? 'hang'
      : n === 2
        ? new JoinError('SYNOD_ERR_LINK_DOWN', 'the link to b went down', true)
        : n === 3
          ? refusal(undefined, 'adding x failed: not the leader')
          : ok,
  );
  t.equal(r.error, undefined);
  t.equal(r.result?.attempts, 4);
  t.equal(r.asks[0]?.timeoutMs, 10_000, 'one attempt is bounded (10 s)');
});

t.test('gives up after the bound with one line: attempts, last answer, what to do', async (t) => {
  const r = await run(
    () => refusal('SYNOD_ERR_NO_LEADER', 'SYNOD_ERR_NO_LEADER: no leader right now'),
    { timeoutMs: 10_000 },
  );
  t.equal(r.result, undefined, 'no success');
  t.equal(r.error?.code, 'SYNOD_ERR_JOIN');
  t.equal(r.error?.retryable, false);
  t.match(
    r.error?.message,
    /^gave up after \d+ attempts in (9|10) s \(bound 10000 ms\); last answer: [ab] \(ws:\/\/[ab]:1\): SYNOD_ERR_NO_LEADER: no leader right now — check that a majority of the cluster is up and has a leader \(synod status --cluster URL\), or allow longer with --join-timeout MS$/,
  );
  t.ok(r.clock.now() <= 10_000, `not past the bound (${r.clock.now()} ms)`);
  t.ok(r.clock.now() >= 10_000 - 4_000, 'but close to it: it kept trying');
  t.ok(r.asks.length >= 5, `it kept asking (${r.asks.length} attempts)`);
  // The cap: no delay longer than the backoff maximum.
  const gaps = r.asks.slice(1).map((a, i) => a.at - (r.asks[i] as { at: number }).at);
  t.ok(
    gaps.every((g) => g <= 4_000),
    'delays stay under the cap',
  );
  // An attempt that hangs is cut at the bound, not after its own 30 s.
  const hung = await run(() => 'hang', { timeoutMs: 2_000 });
  t.equal(hung.error?.code, 'SYNOD_ERR_JOIN');
  t.ok(hung.clock.now() <= 2_000, `a hanging attempt ends at the bound (${hung.clock.now()} ms)`);
});

t.test('refusals that asking again cannot fix fail at once', async (t) => {
  const refused = await run(() =>
    refusal('SYNOD_ERR_JOIN_REFUSED', 'SYNOD_ERR_JOIN_REFUSED: x is a voter, not a learner'),
  );
  t.equal(refused.asks.length, 1, 'one attempt');
  t.equal(refused.error?.code, 'SYNOD_ERR_JOIN_REFUSED');
  t.match(refused.error?.message, /^a refused to add x: SYNOD_ERR_JOIN_REFUSED: x is a voter/);
  const paxos = await run(() =>
    refusal(undefined, 'SYNOD_ERR_PAXOS_STATIC_MEMBERSHIP: Multi-Paxos membership is static'),
  );
  t.equal(paxos.asks.length, 1, 'an old node’s static-membership text: one attempt');
  const secret = await run(
    () =>
      new JoinError(
        'SYNOD_ERR_AUTH_FAILED',
        'a (ws://a:1) refused this node’s handshake: wrong cluster secret',
        false,
      ),
  );
  t.equal(secret.asks.length, 1, 'a wrong secret: one attempt');
  t.equal(secret.error?.code, 'SYNOD_ERR_AUTH_FAILED');
  t.equal(secret.clock.now(), 0, 'no time spent waiting');
  const bug = await run(() => Object.assign(new Error('weird'), { code: 'SYNOD_ERR_SOMETHING' }));
  t.equal(bug.asks.length, 1, 'an unclassified coded error is not retried blindly');
});

t.test('bare URLs: the id is learned first, and a node that is down is retried', async (t) => {
  let discoveries = 0;
  const r = await run((_, target) => (target === 'b' ? ok : refusal('SYNOD_ERR_NO_LEADER', 'x')), {
    targets: [{ url: 'ws://b:1' }],
    discover: async (url) => {
      discoveries++;
      if (discoveries === 1)
        throw new JoinError('SYNOD_ERR_CONNECTION_FAILED', `nothing listens at ${url}`, true);
      return 'b';
    },
  });
  t.equal(r.error, undefined);
  t.equal(discoveries, 2, 'discovery was retried');
  t.same(
    r.asks.map((a) => a.target),
    ['b'],
    'then asked by id',
  );
  t.match(r.logs[0]?.message, /nothing listens at ws:\/\/b:1/);
});

t.test('parseJoinTargets: lists, ids, and one-line errors', async (t) => {
  t.same(parseJoinTargets('ws://h:1, b=ws://h:2'), [
    { url: 'ws://h:1' },
    { id: 'b', url: 'ws://h:2/' },
  ]);
  t.throws(() => parseJoinTargets('http://h:1'), /--join: "http:\/\/h:1" must be ws:\/\/host:port/);
  t.throws(() => parseJoinTargets('nope'), /--join: "nope" is not a URL/);
  t.throws(() => parseJoinTargets(' , '), /--join needs at least one/);
  t.throws(() => parseJoinTargets('b=ftp://x:1'), /^--join: .*must start with ws:\/\//);
});

t.test('askWatchingLink ends an attempt early from the link’s state', async (t) => {
  const clock = new VirtualClock();
  const links$ = new Subject<LinkStatus>();
  let status: LinkStatus | undefined;
  const transport = { links$, linkStatus: () => status };
  const target = { id: 'a', url: 'ws://a:1' };
  const never = new Promise<JoinReply>(() => {});

  // A handshake refusal: not retryable, one line with what to fix.
  const refused = askWatchingLink(transport, target, never, clock);
  links$.next({
    peer: 'a',
    state: 'reconnecting',
    reason: 'SYNOD_ERR_AUTH_FAILED: peer a failed to prove the cluster secret',
  });
  const e1 = (await refused.catch((e: JoinError) => e)) as JoinError;
  t.equal(e1.code, 'SYNOD_ERR_AUTH_FAILED');
  t.equal(e1.retryable, false);
  t.match(
    e1.message,
    /^a \(ws:\/\/a:1\) refused this node's handshake: wrong cluster secret \(SYNOD_ERR_AUTH_FAILED: peer a failed to prove the cluster secret\) — check that --secret-file holds the same secret/,
  );

  // The link drops after it was up: retryable.
  const dropped = askWatchingLink(transport, target, never, clock);
  links$.next({ peer: 'b', state: 'down', reason: 'other peer' });
  links$.next({ peer: 'a', state: 'up' });
  links$.next({ peer: 'a', state: 'down', reason: 'SYNOD_ERR_CONNECTION_FAILED: closed (1006)' });
  const e2 = (await dropped.catch((e: JoinError) => e)) as JoinError;
  t.equal(e2.code, 'SYNOD_ERR_LINK_DOWN');
  t.equal(e2.retryable, true);

  // No link within the connect window: retryable, naming the link's last reason.
  status = { peer: 'a', state: 'reconnecting', reason: 'connect ECONNREFUSED' };
  const unreachable = askWatchingLink(transport, target, never, clock, 1000);
  clock.advanceTo(999);
  let early = false;
  void unreachable.catch(() => {
    early = clock.now() < 1000;
  });
  await advanceAll(clock, 1000);
  const e3 = (await unreachable.catch((e: JoinError) => e)) as JoinError;
  t.equal(early, false, 'not before the window ends');
  t.equal(e3.code, 'SYNOD_ERR_CONNECTION_FAILED');
  t.match(e3.message, /no link to a at ws:\/\/a:1 within 1000 ms \(connect ECONNREFUSED\)/);

  // A link that is up: the answer passes through.
  status = { peer: 'a', state: 'up' };
  const answered = askWatchingLink(transport, target, Promise.resolve(ok), clock, 1000);
  t.same(await answered, ok);
});

async function advanceAll(clock: VirtualClock, to: number): Promise<void> {
  while (clock.step(to) !== undefined) await new Promise<void>((res) => setImmediate(res));
  clock.advanceTo(to);
}
