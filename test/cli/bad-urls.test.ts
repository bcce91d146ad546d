/**
 * Malformed node URLs are usage errors in one line, naming the flag and the expected form:
 * `synod status --cluster notaurl` (was "Invalid URL: notaurl", exit 1) and `synod node
 * --peers b` (was the same text twice).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { runSynod } from '../helpers/node-processes.js';

t.test('bad --cluster and --peers entries', async (t) => {
  const status = await runSynod(['status', '--cluster', 'notaurl']);
  t.equal(status.code, 2, 'status: usage error');
  t.equal(
    status.err,
    'synod: --cluster: "notaurl" is not a node URL: use ws://host:port, wss://host:port or id=ws://host:port\n',
  );
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-bad-peers-'));
  const node = await runSynod([
    'node',
    '--id',
    'a',
    '--listen',
    '127.0.0.1:0',
    '--data',
    path.join(dir, 'a'),
    '--peers',
    'b',
  ]);
  t.equal(node.code, 2, 'node: usage error');
  t.equal(
    node.err.trim().split('\n').at(-1),
    'synod: --peers: bad peer "b": expected id=ws://host:port or id=wss://host:port',
    'one line, the text once',
  );
});
