/**
 * Client commands against one two-node wss:// cluster whose certificate is self-signed (made
 * here with openssl, as test/cli/node-tls.test.ts does): with `--tls-ca` (or SYNOD_TLS_CA)
 * `synod kv`, `synod status` and `synod member list` connect; without it, or with a CA that did
 * not sign the nodes' certificate, they fail with one actionable line; a CA path that cannot be
 * used is a usage error (exit 2) naming the flag, before anything is dialled.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { NodeProcesses, runSynod, until } from '../helpers/node-processes.js';
import { selfSignedCert } from '../helpers/ws-util.js';

/** The lines of a command's stderr that are not blank. */
const lines = (s: string) => s.split('\n').filter((l) => l.trim() !== '');

const openssl = spawnSync('openssl', ['version']);
if (openssl.status !== 0) t.skip('SKIPPED: openssl is needed to make a certificate', () => {});
else
  t.test('client commands over wss:// with a self-signed CA', async (t) => {
    const nodes = await NodeProcesses.create(['n1', 'n2']);
    t.teardown(() => nodes.close());
    // selfSignedCert throws if openssl fails.
    const { certFile: cert, keyFile: key } = selfSignedCert();
    const { certFile: otherCa } = selfSignedCert();
    const notPem = path.join(nodes.dir, 'not-pem.txt');
    t.not(readFileSync(cert, 'utf8'), readFileSync(otherCa, 'utf8'), 'two different CAs made');
    writeFileSync(notPem, 'this is not a certificate\n');
    for (const n of nodes.nodes.values()) n.url = n.url.replace('ws://', 'wss://');
    nodes.startAll(() => ['--tls-cert', cert, '--tls-key', key, '--tls-ca', cert]);
    const url = nodes.node('n1').url;
    const cluster = ['--cluster', `${url},${nodes.node('n2').url}`];
    const secret = ['--secret-file', nodes.secretFile];

    // A CA file that cannot be used is refused before anything is dialled: these run while
    // the nodes start. The put waits (its deadline, retries included) for a leader.
    const missing = path.join(nodes.dir, 'no-such-ca.pem');
    const repo = path.join(nodes.dir, 'repo');
    const listening = async () => {
      for (const id of ['n1', 'n2'])
        await until(
          `${id} listening on wss://`,
          () => /listening on wss:\/\//.test(nodes.node(id).output) || undefined,
          90_000,
        ).catch((err: Error) => {
          t.comment(nodes.node(id).output.slice(-2000));
          throw err;
        });
      // Both listen; the put's deadline (retries included) covers electing a leader.
      return runSynod([
        'kv',
        'put',
        'tls/k',
        'v1',
        ...cluster,
        ...secret,
        '--tls-ca',
        cert,
        '--timeout',
        '90000',
      ]);
    };
    const [bad, put] = await Promise.all([
      Promise.all([
        runSynod(['kv', 'get', 'tls/k', ...cluster, ...secret, '--tls-ca', missing]),
        runSynod(['status', ...cluster, ...secret, '--tls-ca', missing]),
        runSynod(['member', 'list', ...cluster, ...secret, '--tls-ca', missing]),
        runSynod(['kv', 'get', 'tls/k', ...cluster, ...secret, '--tls-ca', notPem]),
        runSynodEnv(['status', ...cluster, ...secret], { SYNOD_TLS_CA: missing }),
        runSynod(['backup', 'full', '--repo', repo, ...cluster, ...secret, '--tls-ca', missing]),
      ]),
      listening(),
    ]);
    if (put.code !== 0) t.comment(nodes.node('n1').output.slice(-2000));
    t.equal(put.code, 0, `kv put with --tls-ca succeeds (${put.err})`);

    const [
      get,
      getEnv,
      status,
      members,
      noCa,
      statusNoCa,
      wrongCa,
      named,
      backup,
      backupNoCa,
      statusNamedNoCa,
    ] = await Promise.all([
      runSynod(['kv', 'get', 'tls/k', ...cluster, ...secret, '--tls-ca', cert]),
      runSynodEnv(['kv', 'get', 'tls/k', ...cluster, ...secret], { SYNOD_TLS_CA: cert }),
      runSynod(['status', ...cluster, ...secret, '--tls-ca', cert, '--json']),
      runSynod(['member', 'list', ...cluster, ...secret, '--tls-ca', cert]),
      runSynod(['kv', 'get', 'tls/k', '--cluster', url, ...secret]),
      runSynod(['status', '--cluster', url, ...secret]),
      runSynod(['kv', 'get', 'tls/k', '--cluster', url, ...secret, '--tls-ca', otherCa]),
      runSynod(['kv', 'get', 'tls/k', '--cluster', `n1=${url}`, ...secret, '--tls-ca', cert]),
      // The backup agent joins the cluster as a learner over wss:// and leaves again.
      runSynod(['backup', 'full', '--repo', repo, ...cluster, ...secret, '--tls-ca', cert]),
      runSynod(['backup', 'full', '--repo', `${repo}-2`, '--cluster', url, ...secret]),
      // A named node is not asked for its id: the advice comes from the link's failure.
      runSynod(['status', '--cluster', `n1=${url}`, ...secret, '--timeout-ms', '3000']),
    ]);
    t.equal(get.code, 0, `kv get with --tls-ca succeeds (${get.err})`);
    t.match(get.out, /v1/, 'kv get reads the value put over wss://');
    t.equal(getEnv.code, 0, `kv get with SYNOD_TLS_CA succeeds (${getEnv.err})`);
    t.match(getEnv.out, /v1/);
    t.equal(named.code, 0, `kv get naming the node (n1=wss://…) succeeds (${named.err})`);
    t.match(named.out, /v1/);

    t.equal(status.code, 0, `status with --tls-ca succeeds (${status.err})`);
    const st = JSON.parse(status.out) as unknown;
    const text = JSON.stringify(st);
    t.match(text, /"n1"/, 'status reports n1');
    t.match(text, /"n2"/, 'status reports n2');
    t.equal(members.code, 0, `member list with --tls-ca succeeds (${members.err})`);
    t.match(members.out, /n1/);

    const untrusted =
      /certificate not trusted.*pass --tls-ca FILE .*with the CA that signed the nodes' certificates/;
    t.equal(backup.code, 0, `backup full with --tls-ca succeeds (${backup.err})`);
    t.match(backup.out, /full backup .* of the live cluster/);
    t.not(backupNoCa.code, 0, 'backup full without --tls-ca fails');
    t.match(backupNoCa.err, untrusted, 'backup full without --tls-ca says to pass --tls-ca');
    for (const [what, r] of [
      ['kv get', noCa],
      ['status', statusNoCa],
      ['status (n1=wss://…)', statusNamedNoCa],
    ] as const) {
      t.not(r.code, 0, `${what} without --tls-ca fails`);
      t.equal(lines(r.err).length, 1, `${what} without --tls-ca: one line (${r.err})`);
      t.match(r.err, untrusted, `${what} without --tls-ca says to pass --tls-ca`);
      t.notMatch(r.err, /\n\s+at /, 'no stack trace');
    }
    t.not(wrongCa.code, 0, 'a CA that did not sign the certificate fails');
    t.equal(lines(wrongCa.err).length, 1, `wrong CA: one line (${wrongCa.err})`);
    t.match(wrongCa.err, /certificate not trusted .*not signed by the CA in --tls-ca /);
    t.ok(wrongCa.err.includes(`--tls-ca ${otherCa}`), 'the line names the CA file given');

    const [kvMissing, statusMissing, memberMissing, kvNotPem, statusEnvMissing, backupMissing] =
      bad;
    for (const [what, r, flag, why] of [
      ['kv get', kvMissing, '--tls-ca', /cannot read CA file .*no-such-ca\.pem \(ENOENT\)/],
      ['status', statusMissing, '--tls-ca', /cannot read CA file .*no-such-ca\.pem \(ENOENT\)/],
      ['member list', memberMissing, '--tls-ca', /cannot read CA file .*no-such-ca\.pem/],
      ['kv get (not PEM)', kvNotPem, '--tls-ca', /holds no PEM certificate/],
      ['status (env)', statusEnvMissing, 'SYNOD_TLS_CA', /cannot read CA file/],
      ['backup full', backupMissing, '--tls-ca', /cannot read CA file .*no-such-ca\.pem/],
    ] as const) {
      t.equal(r.code, 2, `${what}: an unusable CA file is exit 2 (${r.err})`);
      t.match(r.err, flag, `${what}: the line names ${flag}`);
      t.match(r.err, why);
      t.equal(lines(r.err).length, 1, `${what}: one line`);
    }
  });

function runSynodEnv(
  args: string[],
  env: Record<string, string>,
): Promise<{ code: number | null; out: string; err: string }> {
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  Object.assign(process.env, env);
  // spawn copies the environment synchronously, so it can be restored straight away.
  const p = runSynod(args);
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  return p;
}
