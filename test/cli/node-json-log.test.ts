// `synod node --log-format json`: every line the node writes, on stdout or stderr, is one JSON
// object with an ISO time, a level and a message; SIGTERM ends the node cleanly with exit code
// 0. (test/cli/wrong-secret.test.ts checks the same of the error and debug lines.)
import { spawn } from 'node:child_process';
import t from 'tap';
import { NodeProcesses, SYNOD_CLI, until } from '../helpers/node-processes.js';

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
