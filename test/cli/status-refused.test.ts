import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { freePort, NodeProcesses, SYNOD_CLI, until } from '../helpers/node-processes.js';

t.test('synod status with the wrong secret says the node refused it, by code', async (t) => {
  const nodes = await NodeProcesses.create(['a', 'b', 'c']);
  t.teardown(() => nodes.close());
  nodes.start('a'); // b and c stay down: a node listens whether or not its peers are up
  const wrong = path.join(nodes.dir, 'wrong.key');
  writeFileSync(wrong, 'not-the-cluster-secret-at-all-0000\n');
  const a = nodes.node('a');
  const status = (secretFile: string) =>
    spawnSync(
      process.execPath,
      [...SYNOD_CLI, 'status', '--cluster', `a=${a.url}`, '--secret-file', secretFile, '--json'],
      { encoding: 'utf8', timeout: 120_000 },
    );
  // Wait (bounded) until the node answers with the right secret.
  await until('node a answers synod status', () =>
    status(nodes.secretFile).status === 0 ? true : undefined,
  );
  const r = status(wrong);
  t.not(r.status, 0, 'exit code is not 0');
  t.match(r.stderr, /^synod: refused: SYNOD_ERR_AUTH_FAILED/m, `one line: ${r.stderr.trim()}`);
  t.equal(r.stderr.trim().split('\n').length, 1, 'one line, no stack trace');
});

t.test(
  'synod status with bare URLs: a down node is shown unreachable, the others answer',
  async (t) => {
    const nodes = await NodeProcesses.create(['a', 'b', 'c']);
    t.teardown(() => nodes.close());
    nodes.start('a');
    const down = `ws://127.0.0.1:${await freePort()}`; // nothing listens there
    const status = () =>
      spawnSync(
        process.execPath,
        [
          ...SYNOD_CLI,
          'status',
          '--cluster',
          `${down},${nodes.node('a').url}`,
          '--secret-file',
          nodes.secretFile,
          '--json',
        ],
        { encoding: 'utf8', timeout: 120_000 },
      );
    const r = await until('node a answers next to a down URL', () => {
      const s = status();
      return s.status === 0 ? s : undefined;
    });
    const out = JSON.parse(r.stdout) as { nodes: { id: string; error?: string; role?: string }[] };
    t.ok(
      out.nodes.some((n) => n.id === 'a' && n.role !== undefined),
      'node a answered',
    );
    t.match(
      out.nodes.find((n) => n.id === down)?.error ?? '',
      /nothing listens|cannot reach/,
      'the down URL is listed with why',
    );
  },
);
