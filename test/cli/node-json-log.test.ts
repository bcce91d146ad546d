// `synod node --log-format json`: every line the node writes, on stdout or stderr, is one JSON
// object with an ISO time, a level and a message; SIGTERM ends the node cleanly with exit code
// 0. (test/cli/wrong-secret.test.ts checks the same of the error and debug lines.)
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { freePort, NodeProcesses, runSynod, SYNOD_CLI, until } from '../helpers/node-processes.js';

t.test('JSON log lines with time, level and message; clean exit on SIGTERM', async (t) => {
  const nodes = await NodeProcesses.create(['a']);
  t.teardown(() => nodes.close());
  const a = nodes.node('a');
  const child = spawn(
    process.execPath,
    [
      ...SYNOD_CLI,
      'node',
      '--id',
      'a',
      '--listen',
      `127.0.0.1:${a.port}`,
      '--data',
      a.dataDir,
      '--secret-file',
      nodes.secretFile,
      '--log-format',
      'json',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  let stderr = '';
  let stdout = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  await until(
    'the node says it is up',
    () => (/ up at ws:/.test(stderr) ? true : undefined),
    90_000,
  );
  child.kill('SIGTERM');
  t.equal(await exited, 0, 'exit code 0 after SIGTERM');
  const lines = `${stdout}\n${stderr}`.split('\n').filter((l) => l.trim() !== '');
  const parsed = lines.map((l) => {
    try {
      return JSON.parse(l) as { time?: string; level?: string; msg?: string };
    } catch {
      return undefined;
    }
  });
  t.ok(
    parsed.every((p) => p !== undefined),
    `every stderr line is JSON (${lines
      .filter((_, i) => !parsed[i])
      .slice(0, 2)
      .join(' | ')})`,
  );
  for (const p of parsed.filter((x) => x !== undefined)) {
    t.match(p?.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO time');
    t.match(p?.level, /^(debug|info|warn|error)$/, 'level');
    t.type(p?.msg, 'string', 'message');
  }
  t.ok(
    parsed.some((p) => /stopped cleanly/.test(p?.msg ?? '')),
    'the last word is a clean stop',
  );
});

/**
 * With `--log-format json`, a node that cannot start says why in one JSON line too (it was a
 * plain `synod: …` line): the port in use, a data directory it cannot use, flags that parse but
 * do not go together, and a flag it does not know (asked for before parsing). All four processes
 * run at once.
 */
t.test('a fatal start error is one JSON line with the code and the exit code', async (t) => {
  const nodes = await NodeProcesses.create(['a']);
  t.teardown(() => nodes.close());
  const a = nodes.node('a');
  const busy = createServer();
  await new Promise<void>((r) => busy.listen(a.port, '127.0.0.1', () => r()));
  t.teardown(() => new Promise<void>((r) => busy.close(() => r())));
  const notADir = path.join(nodes.dir, 'a-file');
  writeFileSync(notADir, 'not a directory\n');
  const base = ['node', '--id', 'a', '--secret-file', nodes.secretFile];
  const free = `127.0.0.1:${await freePort()}`;
  const cases = [
    {
      what: 'port in use',
      args: [
        ...base,
        '--listen',
        `127.0.0.1:${a.port}`,
        '--data',
        a.dataDir,
        '--log-format',
        'json',
      ],
      msg: /already in use.*choose another --listen port/,
      exit: 1,
    },
    {
      what: 'a data directory that is a file',
      args: [...base, '--listen', free, '--data', notADir, '--log-format=json'],
      msg: new RegExp(notADir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')),
      exit: 1,
    },
    {
      what: 'flags that do not go together',
      args: [
        ...base,
        '--listen',
        free,
        '--data',
        a.dataDir,
        '--tls-cert',
        'c.pem',
        '--log-format',
        'json',
      ],
      msg: /^--tls-cert and --tls-key go together$/,
      code: 'SYNOD_ERR_USAGE',
      exit: 2,
    },
    {
      what: 'an unknown flag (before parsing)',
      args: [...base, '--listen', free, '--data', a.dataDir, '--log-format', 'json', '--colour'],
      msg: /^unknown option --colour/,
      code: 'SYNOD_ERR_USAGE',
      exit: 2,
    },
  ];
  const runs = await Promise.all(cases.map((c) => runSynod(c.args, 90_000)));
  for (const [i, c] of cases.entries()) {
    const r = runs[i] as Awaited<ReturnType<typeof runSynod>>;
    t.equal(r.code, c.exit, `${c.what}: exit ${c.exit}`);
    const lines = `${r.out}${r.err}`.split('\n').filter((l) => l.trim() !== '');
    const parsed = lines.map((l) => {
      try {
        return JSON.parse(l) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    });
    t.same(
      lines.filter((_, j) => parsed[j] === undefined),
      [],
      `${c.what}: every line is JSON`,
    );
    const fatal = parsed.filter((p) => p?.fatal === true);
    t.equal(fatal.length, 1, `${c.what}: one fatal line`);
    t.match(
      fatal[0],
      {
        time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
        level: 'error',
        msg: c.msg,
        exitCode: c.exit,
        ...(c.code ? { code: c.code } : {}),
      },
      `${c.what}: says what is wrong in msg, with the exit code`,
    );
    t.notMatch(String(fatal[0]?.msg), /^synod: |\n/, `${c.what}: no "synod:" prefix, no stack`);
  }
});
