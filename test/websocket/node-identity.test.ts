/**
 * Per-node identity by mutual TLS (`tls.nodeIdentity`). The cluster secret proves membership
 * only: a member could claim any node id, and while the real node is down nothing told them
 * apart. With a private CA that issues one certificate per node, a peer's claimed node id must
 * be named by its certificate, on both sides of the handshake: a member holding the secret
 * and a valid certificate of its own is refused as another node (SYNOD_ERR_IDENTITY_MISMATCH,
 * logged on both sides) even when that node is down, and a dialler without a certificate is
 * refused in the TLS handshake.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { ErrorCode } from '../../transports/websocket/errors.js';
import { certNodeIds } from '../../transports/websocket/identity.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { identity, rawDial } from '../helpers/ws-raw-peer.js';
import { collect, env, linkUp, startNode, until, waitFor } from '../helpers/ws-util.js';

const dir = mkdtempSync(path.join(tmpdir(), 'synod-ident-'));
const ossl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'ignore', cwd: dir });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
ossl(
  'req',
  '-x509',
  ...EC,
  '-keyout',
  'ca.key',
  '-out',
  'ca.pem',
  '-days',
  '1',
  '-subj',
  '/CN=synod-test-ca',
);
writeFileSync(
  path.join(dir, 'ext.cnf'),
  'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n',
);
/** A certificate from the test CA whose subject CN is `cn` (plus the loopback address). */
function issue(cn: string): { certFile: string; keyFile: string } {
  ossl('req', ...EC, '-keyout', `${cn}.key`, '-out', `${cn}.csr`, '-subj', `/CN=${cn}`);
  ossl(
    'x509',
    '-req',
    '-in',
    `${cn}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    `${cn}.pem`,
    '-days',
    '1',
    '-extfile',
    'ext.cnf',
  );
  return { certFile: path.join(dir, `${cn}.pem`), keyFile: path.join(dir, `${cn}.key`) };
}
const caFile = path.join(dir, 'ca.pem');
const tlsFor = (cn: string) => ({ ...issue(cn), caFile, nodeIdentity: true });
const tlsA = tlsFor('a');
const tlsB = tlsFor('b');
const tlsMallory = tlsFor('mallory');
const quick = { secret: 's', backoff: { initialMs: 50, maxMs: 200 } };

t.test('certNodeIds reads CN, DNS SANs and synod:node: URI SANs', async (t) => {
  t.same(certNodeIds(undefined), []);
  t.same(certNodeIds({}), []);
  t.same(
    certNodeIds({
      subject: { CN: 'a' },
      subjectaltname: 'IP Address:127.0.0.1, DNS:a.example, URI:synod:node:a2, URI:https://x',
    } as never),
    ['a', 'a.example', 'a2'],
  );
});

t.test('options: nodeIdentity needs cert, key, CA and wss:// peers', async (t) => {
  const bad = (o: object) =>
    t.throws(() => new WebSocketTransport({ nodeId: 'x', ...o }), { code: ErrorCode.BAD_CONFIG });
  bad({ tls: { nodeIdentity: true, caFile } });
  bad({ tls: { ...tlsA, insecureSkipVerify: true } });
  bad({ tls: tlsA, peers: ['b=ws://127.0.0.1:1'] });
  const ok = new WebSocketTransport({ nodeId: 'a', tls: tlsA });
  t.throws(() => ok.addPeer('b=ws://127.0.0.1:1'), { code: ErrorCode.BAD_CONFIG });
  await ok.close();
});

t.test(
  'members link over mutual TLS; a member cannot claim another id, even one that is down',
  async (t) => {
    const a = await startNode('a', { ...quick, tls: tlsA });
    t.teardown(() => a.t.close());
    t.match(a.url, /^wss:/);
    // b is down: mallory (holds the secret and a valid certificate of its own) claims to be b
    const asB = await startNode('b', {
      ...quick,
      tls: tlsMallory,
      listen: undefined,
      peers: [`a=${a.url}`],
    });
    const refused = await waitFor(
      asB.t.links$,
      (s) => (s.reason ?? '').startsWith(ErrorCode.IDENTITY_MISMATCH),
      10_000,
      'impostor refused',
    );
    t.not(refused.state, 'up');
    await until(
      () =>
        a.log.has('error', ErrorCode.IDENTITY_MISMATCH) &&
        asB.log.has('error', ErrorCode.IDENTITY_MISMATCH),
      10_000,
      'logged on both sides',
    );
    t.ok(
      a.log.has('error', 'claims node id b, but its TLS certificate names mallory'),
      'a names the mismatch',
    );
    t.ok(
      asB.log.has('error', 'refused the connection: SYNOD_ERR_IDENTITY_MISMATCH'),
      'the impostor is told',
    );
    t.equal(a.t.linkStatus('b')?.state ?? 'down', 'down', 'no link to "b"');
    await asB.t.close();

    // the real b links, and traffic flows both ways
    const b = await startNode('b', { ...quick, tls: tlsB, peers: [`a=${a.url}`] });
    t.teardown(() => b.t.close());
    await linkUp(b.t, 'a');
    const got = collect(b.t.inbound$, 1);
    await until(() => a.t.linkStatus('b')?.state === 'up', 5000, 'a sees b');
    a.t.send(env('b/x', 'hello b'));
    t.equal((await got)[0]!.m, 'hello b');

    // dialler side: a dials "c" at an address where mallory answers as c
    const fakeC = await startNode('c', { ...quick, tls: tlsMallory });
    t.teardown(() => fakeC.t.close());
    a.t.addPeer(`c=${fakeC.url}`);
    await waitFor(
      a.t.links$,
      (s) => s.peer === 'c' && (s.reason ?? '').startsWith(ErrorCode.IDENTITY_MISMATCH),
      10_000,
      'a refuses the fake c',
    );
    t.ok(
      a.log.has('error', 'claims node id c, but its TLS certificate names mallory'),
      'refused by the dialler',
    );

    // a dialler without a client certificate does not get past TLS
    const before = a.t.counters().errors[ErrorCode.BAD_HTTP] ?? 0;
    const noCert = await rawDial(a.url, identity('d', 's'), 'a', {
      ca: [] as never,
      rejectUnauthorized: false,
    }).then(
      (ws) => {
        ws.terminate();
        return 'accepted';
      },
      (err: Error) => err.message,
    );
    t.not(noCert, 'accepted', `no certificate, no connection (${noCert})`);
    await until(
      () => (a.t.counters().errors[ErrorCode.BAD_HTTP] ?? 0) > before,
      5000,
      'TLS refusal counted',
    );
    t.equal(a.t.linkStatus('b')?.state, 'up', 'b kept its link throughout');
  },
);
