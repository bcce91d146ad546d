import type { Test } from 'tap';
import t from 'tap';
import type { LinkStatus } from '../../lib/transport.js';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { decodeControl, encodeControl, FrameType } from '../../transports/websocket/frames.js';
import {
  answerChallenge,
  checkAuth,
  checkHello,
  computeProof,
  makeChallenge,
  makeHello,
  newNonce,
} from '../../transports/websocket/handshake.js';
import { identity } from '../helpers/ws-raw-peer.js';
import { env, linkUp, startNode, until, waitFor } from '../helpers/ws-util.js';

t.test('HMAC challenge-response: both sides prove, secret never on the wire', async (t) => {
  const a = identity('a', 'sesame');
  const b = identity('b', 'sesame');
  const nd = newNonce();
  const hello = makeHello(a, nd, 'b');
  checkHello(b, hello);
  const { challenge, transcript } = makeChallenge(b, hello, newNonce());
  const { proof } = answerChallenge(a, 'b', nd, challenge);
  checkAuth(b, transcript, proof);
  const secret = Buffer.from('sesame');
  for (const frame of [
    encodeControl(FrameType.HELLO, hello),
    encodeControl(FrameType.CHALLENGE, challenge),
    encodeControl(FrameType.AUTH, { proof }),
  ]) {
    t.equal(frame.indexOf(secret), -1, 'secret bytes absent from the frame');
    t.ok(decodeControl(frame), 'frame decodes');
  }
  t.not(
    Buffer.from(proof!).toString('hex'),
    Buffer.from(challenge.proof!).toString('hex'),
    'role-bound proofs differ',
  );
  // a reflected proof (the acceptor's own) is not accepted as the dialer's
  t.throws(() => checkAuth(b, transcript, challenge.proof), { code: ErrorCode.AUTH_FAILED });
  // a dialer with another secret rejects the acceptor's proof
  t.throws(() => answerChallenge(identity('a', 'other'), 'b', nd, challenge), {
    code: ErrorCode.AUTH_FAILED,
  });
  // a proof over another nonce fails
  const forged = computeProof(Buffer.from('sesame'), 'dialer', {
    ...transcript,
    dialerNonce: newNonce(),
  });
  t.throws(() => checkAuth(b, transcript, forged), { code: ErrorCode.AUTH_FAILED });
  t.throws(() => checkAuth(b, transcript, null), { code: ErrorCode.AUTH_FAILED });
});

t.test('HELLO checks: version, cluster, node, secret presence', async (t) => {
  const b = identity('b', 's');
  const hello = makeHello(identity('a', 's'), newNonce(), 'b');
  t.throws(() => checkHello(b, { ...hello, wv: 99 }), { code: ErrorCode.VERSION_MISMATCH });
  t.throws(() => checkHello(b, { ...hello, pv: 99 }), { code: ErrorCode.VERSION_MISMATCH });
  t.throws(() => checkHello(b, { ...hello, cluster: 'x' }), { code: ErrorCode.WRONG_CLUSTER });
  t.throws(() => checkHello(b, { ...hello, to: 'c' }), { code: ErrorCode.WRONG_NODE });
  t.throws(() => checkHello(b, { ...hello, node: 'b' }), { code: ErrorCode.SELF_CONNECTION });
  t.throws(() => checkHello(b, { ...hello, auth: false }), { code: ErrorCode.AUTH_FAILED });
  t.throws(() => checkHello(identity('b'), hello), { code: ErrorCode.AUTH_FAILED });
  t.doesNotThrow(() => checkHello(b, hello));
});

async function refused(
  t: Test,
  optsA: Record<string, unknown>,
  optsB: Record<string, unknown>,
  code: string,
  text: string,
) {
  const b = await startNode('b', optsB);
  const a = await startNode('a', { ...optsA, peers: [`b=${b.url}`] });
  const statuses: LinkStatus[] = [];
  const sub = a.t.links$.subscribe((s) => statuses.push(s));
  t.teardown(async () => {
    sub.unsubscribe();
    await a.t.close();
    await b.t.close();
  });
  await until(
    () => (a.t.counters().errors[code] ?? 0) > 0 && (b.t.counters().errors[code] ?? 0) > 0,
    10_000,
    `${code} counted on both sides`,
  );
  // the dialer's links$ carries the refusal code at the start of `reason`
  await until(
    () => statuses.some((s) => s.peer === 'b' && s.reason?.startsWith(`${code}: `) === true),
    10_000,
    `links$ reports ${code}`,
  );
  const refusal = statuses.find((s) => s.reason?.startsWith(`${code}: `));
  t.equal(refusal?.state, 'reconnecting', 'still retrying (the operator may fix the config)');
  t.equal(a.t.linkStatus('b')?.reason?.split(':')[0], code, 'linkStatus() says so too');
  const count = statuses.length;
  await until(() => (a.t.counters().errors[code] ?? 0) > 1, 10_000, 'refused again on retry');
  t.ok(
    statuses.length - count <= 1,
    'a repeated refusal with the same reason is not emitted again',
  );
  t.ok(a.log.has('error', text), `dialer logs an error mentioning "${text}"`);
  t.ok(b.log.has('error', text), `acceptor logs an error mentioning "${text}"`);
  t.ok(
    a.log.lines.some((l) => l.level === 'error' && l.message.includes(code)),
    'dialer log has the code',
  );
  t.ok(
    b.log.lines.some((l) => l.level === 'error' && l.message.includes(code)),
    'acceptor log has the code',
  );
  t.not(a.t.linkStatus('b')?.state, 'up', 'no link');
  t.equal(b.t.counters().linksUp, 0, 'acceptor never brought a link up');
  t.equal(a.t.counters().linksUp, 0, 'dialer never brought a link up');
  t.notOk(a.t.send(env('c/x', 1)), 'sanity: unknown peer refused');
}

t.test('wrong secret is refused, logged on both sides', (t) =>
  refused(t, { secret: 'right' }, { secret: 'wrong' }, ErrorCode.AUTH_FAILED, 'secrets differ'),
);
t.test('secret on one side only is refused', (t) =>
  refused(t, {}, { secret: 'x' }, ErrorCode.AUTH_FAILED, 'no cluster secret'),
);
t.test('wrong cluster is refused', (t) =>
  refused(t, { cluster: 'blue' }, { cluster: 'green' }, ErrorCode.WRONG_CLUSTER, 'cluster'),
);

t.test('a peer address that points at another node is refused', async (t) => {
  const c = await startNode('c');
  const a = await startNode('a', { peers: [`b=${c.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await c.t.close();
  });
  await until(() => (a.t.counters().errors[ErrorCode.WRONG_NODE] ?? 0) > 0, 10_000, 'WRONG_NODE');
  t.ok(c.log.has('error', 'expected node b'), 'acceptor explains');
  t.equal(c.t.counters().linksUp, 0);
});

t.test('the right secret connects', async (t) => {
  const b = await startNode('b', { secret: 'same', cluster: 'k' });
  const a = await startNode('a', { secret: 'same', cluster: 'k', peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await linkUp(a.t, 'b');
  const got = waitFor(b.t.inbound$, () => true);
  a.t.send(env('b/x', 'hi'));
  t.equal((await got).m, 'hi');
});

t.test('non-loopback listener without a secret warns loudly', async (t) => {
  const n = await startNode('n', { listen: { host: '0.0.0.0', port: 0 } });
  t.teardown(() => n.t.close());
  t.ok(n.log.has('warn', 'SECURITY WARNING'), 'warning logged');
  const m = await startNode('m', { listen: { host: '0.0.0.0', port: 0 }, secret: 's' });
  t.teardown(() => m.t.close());
  t.notOk(m.log.has('warn', 'SECURITY WARNING'), 'no warning with a secret');
  const l = await startNode('l');
  t.teardown(() => l.t.close());
  t.notOk(l.log.has('warn', 'SECURITY WARNING'), 'no warning on loopback');
});

t.test('acceptUnknownPeers: false refuses unlisted nodes', async (t) => {
  const b = await startNode('b', { acceptUnknownPeers: false });
  const a = await startNode('a', { peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await until(
    () => (a.t.counters().errors[ErrorCode.PEER_NOT_ALLOWED] ?? 0) > 0,
    10_000,
    'refusal',
  );
  t.ok(b.log.has('error', 'not in b'), 'acceptor logs');
});
