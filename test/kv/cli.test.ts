/**
 * `synod kv`: usage errors, and a round trip on an in-process cluster (`--embedded`), checked by
 * exit codes and by a history file the workload writes and the checker accepts.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run } from '../../cli/commands/kv.js';
import { checkHistory } from '../../lib/history/checker.js';
import { parseJsonl } from '../../lib/history/parse.js';

t.test('usage errors exit 2 with a message', async (t) => {
  t.equal(await run([]), 2, 'no command');
  t.equal(await run(['frobnicate']), 2, 'unknown command');
  t.equal(await run(['get']), 2, 'missing key');
  t.equal(await run(['get', 'k', '--bogus']), 2, 'unknown option');
  t.equal(await run(['get', 'k', '--embedded', 'zab']), 2, 'unknown backend');
  t.equal(await run(['get', 'k', '--consistency', 'psychic', '--embedded', 'raft']), 2);
  t.equal(
    await run(['get', 'k', '--consistency', 'bounded', '--embedded', 'raft']),
    2,
    'bounded needs a bound',
  );
  const env = process.env.SYNOD_CLUSTER;
  delete process.env.SYNOD_CLUSTER;
  t.equal(await run(['get', 'k']), 2, 'no cluster named');
  if (env !== undefined) process.env.SYNOD_CLUSTER = env;
  t.equal(await run(['workload', '--embedded', 'raft', '--mix', 'read:x']), 2, 'bad mix');
  t.equal(await run(['--help']), 0);
});

t.test('put, get, cas on an embedded cluster', async (t) => {
  t.equal(await run(['put', 'k', 'v', '--embedded', 'raft']), 0, 'put');
  t.equal(await run(['get', 'k', '--embedded', 'raft', '--consistency', 'eventual']), 0, 'get');
  t.equal(
    await run(['cas', 'k', 'v2', '--expect', 'nope', '--embedded', 'paxos']),
    1,
    'cas compare failed exits 1',
  );
  t.equal(
    await run(['cas', 'k', 'v2', '--expect-absent', '--embedded', 'paxos']),
    0,
    'cas on absent',
  );
});

t.test('workload writes a history the checker accepts', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'synod-kv-'));
  const file = path.join(dir, 'h.jsonl');
  const code = await run([
    'workload',
    '--embedded',
    'raft',
    '--clients',
    '3',
    '--keys',
    '2',
    '--duration',
    '1',
    '--history',
    file,
    '--json',
  ]);
  t.equal(code, 0);
  const events = parseJsonl(readFileSync(file, 'utf8')).events;
  t.ok(events.length > 0, `${events.length} events recorded`);
  t.equal(checkHistory(events).result, 'linearizable');
});
