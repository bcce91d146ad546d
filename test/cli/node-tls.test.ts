/**
 * `synod node` over wss:// with a self-signed certificate made in the test: `--tls-ca` lets
 * the nodes trust it and link up; a certificate and key given the wrong way round is one
 * line naming the flags (exit 1), not a raw OpenSSL error.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { NodeProcesses, runSynod, until } from '../helpers/node-processes.js';
import { selfSignedCert } from '../helpers/ws-util.js';

const openssl = spawnSync('openssl', ['version']);
if (openssl.status !== 0) t.skip('SKIPPED: openssl is needed to make a certificate', () => {});
else
  t.test('two nodes link over wss:// with --tls-ca; swapped PEM files are one line', async (t) => {
    const nodes = await NodeProcesses.create(['n1', 'n2']);
    t.teardown(() => nodes.close());
    // selfSignedCert throws if openssl fails.
    const { certFile: cert, keyFile: key } = selfSignedCert();
    t.match(readFileSync(cert, 'utf8'), /BEGIN CERTIFICATE/, 'self-signed certificate made');
    for (const n of nodes.nodes.values()) n.url = n.url.replace('ws://', 'wss://');
    nodes.startAll(() => ['--tls-cert', cert, '--tls-key', key, '--tls-ca', cert]);
    for (const [id, other] of [
      ['n1', 'n2'],
      ['n2', 'n1'],
    ] as const) {
      const line = await until(
        `${id}'s link to ${other} over wss`,
        () => (new RegExp(`link to ${other} up`).test(nodes.node(id).output) ? true : undefined),
        60_000,
      ).catch((err: Error) => {
        t.comment(nodes.node(id).output.slice(-2000));
        throw err;
      });
      t.ok(line, `${id} linked to ${other} over wss://`);
    }
    // "up at" is printed once the node has started, which can come after its links are up.
    const up = await until(
      "n1's start-up line",
      () => /up at wss:\/\/127\.0\.0\.1/.test(nodes.node('n1').output) || undefined,
      60_000,
    ).catch(() => false);
    t.ok(up, `n1 serves wss:// (${nodes.node('n1').output.slice(-400)})`);

    const swapped = await runSynod([
      'node',
      '--id',
      'x',
      '--listen',
      '127.0.0.1:0',
      '--data',
      path.join(nodes.dir, 'x'),
      '--tls-cert',
      key,
      '--tls-key',
      cert,
    ]);
    t.equal(swapped.code, 1, 'swapped certificate and key: exit 1');
    t.match(
      swapped.err,
      /^synod: SYNOD_ERR_BAD_CONFIG: TLS certificate .* --tls-cert names the certificate/m,
    );
    t.notMatch(swapped.err, /\n\s+at /, 'no stack trace');
    const caAlone = await runSynod([
      'node',
      '--id',
      'y',
      '--listen',
      '127.0.0.1:0',
      '--data',
      path.join(nodes.dir, 'y'),
      '--tls-ca',
      cert,
    ]);
    t.not(caAlone.code, 0, '--tls-ca without a certificate is refused');
    t.match(caAlone.err, /--tls-ca needs --tls-cert/);
  });
