import { rmSync } from 'node:fs';
import t from 'tap';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { collect, env, linkUp, selfSignedCert, startNode, until } from '../helpers/ws-util.js';

const cert = selfSignedCert();
t.teardown(() => rmSync(cert.dir, { recursive: true, force: true }));

t.test('wss:// with a self-signed certificate made by openssl', async (t) => {
  const tls = { certFile: cert.certFile, keyFile: cert.keyFile, caFile: cert.certFile };
  const b = await startNode('b', { tls, secret: 's' });
  t.match(b.url, /^wss:\/\/127\.0\.0\.1:\d+$/, 'listener serves wss');
  const a = await startNode('a', { tls, secret: 's', peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await linkUp(a.t, 'b');
  await linkUp(b.t, 'a');
  const got = collect(b.t.inbound$, 100);
  for (let i = 0; i < 100; i++) a.t.send(env('b/x', { i, blob: new Uint8Array(100).fill(i) }));
  const envs = await got;
  t.same((envs[99]!.m as { i: number }).i, 99);
  t.same((envs[7]!.m as { blob: Uint8Array }).blob[0], 7, 'binary bodies survive');
});

t.test('a dialler that does not trust the certificate does not connect', async (t) => {
  const b = await startNode('b', { tls: { certFile: cert.certFile, keyFile: cert.keyFile } });
  const a = await startNode('a', { peers: [`b=${b.url}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await until(
    () => (a.t.counters().errors[ErrorCode.CONNECTION_FAILED] ?? 0) > 0,
    10_000,
    'certificate rejected',
  );
  t.not(a.t.linkStatus('b')?.state, 'up');
  t.equal(b.t.counters().linksUp, 0);
});

t.test('plain ws:// to a wss listener fails cleanly', async (t) => {
  const b = await startNode('b', { tls: { certFile: cert.certFile, keyFile: cert.keyFile } });
  const a = await startNode('a', { peers: [`b=${b.url.replace('wss:', 'ws:')}`] });
  t.teardown(async () => {
    await a.t.close();
    await b.t.close();
  });
  await until(
    () => (a.t.counters().errors[ErrorCode.CONNECTION_FAILED] ?? 0) > 0,
    10_000,
    'plain connection to TLS port fails',
  );
  t.equal(b.t.counters().linksUp, 0);
});

t.test('missing key file is a configuration error', async (t) => {
  await t.rejects(startNode('x', { tls: { certFile: cert.certFile } }), {
    code: ErrorCode.BAD_CONFIG,
  });
  await t.rejects(startNode('x', { tls: { certFile: '/nonexistent', keyFile: '/nonexistent' } }), {
    code: ErrorCode.BAD_CONFIG,
  });
});
