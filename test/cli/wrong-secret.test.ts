/**
 * Two real `synod node` processes whose secret files differ. Each node says once per peer, in
 * one line, what is wrong and what to do (`peer b: handshake refused: wrong cluster secret
 * (SYNOD_ERR_AUTH_FAILED …) — check that --secret-file …`), logs the repeated refusals of its
 * redials at debug only, and keeps running (the peer may be the misconfigured one). Run with
 * `--log-format json --log-level debug`, so it also checks that every line either process writes,
 * on stdout or stderr, is one JSON object with an ISO time, a level and a message.
 *
 * Counting, not timing: the test waits (bounded) until each node has logged four refusals, then
 * checks that exactly one was an error line. The old code logged every refusal as an error and
 * fails this.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { NodeProcesses, SYNOD_CLI, until } from '../helpers/node-processes.js';

interface Line {
  time?: string;
  level?: string;
  msg?: string;
  code?: string;
  peer?: string;
  refusal?: boolean;
}

t.test(
  'a wrong secret: one line per peer saying what to do, and the node keeps running',
  async (t) => {
    const procs = await NodeProcesses.create(['a', 'b']);
    t.teardown(() => procs.close());
    const otherSecret = path.join(procs.dir, 'other.key');
    writeFileSync(otherSecret, 'another-secret-of-enough-length-456\n');
    const out = new Map<string, string>([
      ['a', ''],
      ['b', ''],
    ]);
    const children = new Map<string, ChildProcess>();
    for (const id of ['a', 'b']) {
      const n = procs.node(id);
      const other = id === 'a' ? procs.node('b') : procs.node('a');
      const child = spawn(
        process.execPath,
        [
          ...SYNOD_CLI,
          'node',
          '--id',
          id,
          '--listen',
          `127.0.0.1:${n.port}`,
          '--peers',
          `${other.id}=${other.url}`,
          '--data',
          n.dataDir,
          '--secret-file',
          id === 'a' ? procs.secretFile : otherSecret,
          '--log-format',
          'json',
          '--log-level',
          'debug',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      const keep = (d: Buffer) => out.set(id, (out.get(id) ?? '') + d.toString());
      child.stdout.on('data', keep);
      child.stderr.on('data', keep);
      children.set(id, child);
      t.teardown(() => {
        child.kill('SIGKILL');
      });
    }
    const raw = (id: string): string[] =>
      (out.get(id) ?? '').split('\n').filter((l) => l.trim() !== '');
    const parse = (id: string): (Line | undefined)[] =>
      raw(id).map((l) => {
        try {
          return JSON.parse(l) as Line;
        } catch {
          return undefined;
        }
      });
    const refusals = (id: string) =>
      parse(id).filter((l) => l?.code === 'SYNOD_ERR_AUTH_FAILED') as Line[];
    for (const [id, peer] of [
      ['a', 'b'],
      ['b', 'a'],
    ] as const) {
      await until(
        `${id} logs several refusals by ${peer}`,
        () => (refusals(id).length >= 4 ? true : undefined),
        90_000,
      );
      const errors = refusals(id).filter((l) => l.level === 'error');
      t.equal(errors.length, 1, `${id}: one error line about ${peer}, not one per retry`);
      t.match(
        errors[0],
        {
          peer,
          refusal: true,
          msg: new RegExp(
            `^peer ${peer}: handshake refused: wrong cluster secret \\(SYNOD_ERR_AUTH_FAILED: .*\\) — check that --secret-file holds the same secret on every node`,
          ),
        },
        `${id}: says what is wrong and what to do`,
      );
      t.equal(
        children.get(id)?.exitCode,
        null,
        `${id} keeps running (a peer may be misconfigured)`,
      );
    }
    for (const id of ['a', 'b']) {
      const lines = parse(id);
      const bad = raw(id).filter((_, i) => lines[i] === undefined);
      t.same(bad.slice(0, 3), [], `${id}: every stdout/stderr line is JSON`);
      const wrong = lines.filter(
        (l) =>
          l !== undefined &&
          !(
            typeof l.time === 'string' &&
            /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(l.time) &&
            /^(debug|info|warn|error)$/.test(l.level ?? '') &&
            typeof l.msg === 'string'
          ),
      );
      t.same(wrong.slice(0, 3), [], `${id}: each line has an ISO time, a level and a msg`);
      t.ok(lines.length > 5, `${id}: ${lines.length} lines checked`);
    }
  },
);
