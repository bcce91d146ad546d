/**
 * Every command that takes `--secret-file` answers a missing or too-short secret file the
 * same way: one line that says what is wrong and what to do, exit 1 for a file it cannot read
 * and 2 for a secret that is too short, before anything is started or sent. Run in this
 * process (each command refuses before it opens a socket).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run as backup } from '../../cli/commands/backup.js';
import { run as kv } from '../../cli/commands/kv.js';
import { run as member } from '../../cli/commands/member.js';
import { run as node } from '../../cli/commands/node.js';
import { run as status } from '../../cli/commands/status.js';
import { captureStderr } from '../helpers/capture-stderr.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'synod-secret-file-'));
const missing = path.join(dir, 'no-such.key');
const short = path.join(dir, 'short.key');
writeFileSync(short, 'abcde\n');

async function capture(fn: () => Promise<number>): Promise<{ code: number; err: string }> {
  const r = await captureStderr(fn);
  return { code: r.value, err: r.err };
}

const commands: [string, (file: string) => Promise<number>][] = [
  [
    'node',
    (f) =>
      node([
        '--id',
        'a',
        '--listen',
        '127.0.0.1:0',
        '--data',
        path.join(dir, 'data-a'),
        '--secret-file',
        f,
      ]),
  ],
  ['status', (f) => status(['--cluster', 'ws://127.0.0.1:1', '--secret-file', f])],
  ['kv get', (f) => kv(['get', 'x', '--cluster', 'ws://127.0.0.1:1', '--secret-file', f])],
  ['member list', (f) => member(['list', '--cluster', 'ws://127.0.0.1:1', '--secret-file', f])],
  [
    'backup full',
    (f) =>
      backup([
        'full',
        '--cluster',
        'ws://127.0.0.1:1',
        '--repo',
        path.join(dir, 'repo'),
        '--secret-file',
        f,
      ]),
  ],
];

for (const [name, cmd] of commands) {
  t.test(`${name}: a missing secret file`, async (t) => {
    const r = await capture(() => cmd(missing));
    t.equal(r.code, 1, 'exit 1');
    const lines = r.err.trim().split('\n');
    t.equal(lines.length, 1, `one line: ${r.err.trim()}`);
    t.match(lines[0], /cannot read secret file .*no-such\.key \(ENOENT\)/);
    t.match(lines[0], /openssl rand -hex 32 >/, 'says how to make one');
  });
  t.test(`${name}: a secret shorter than 16 characters`, async (t) => {
    const r = await capture(() => cmd(short));
    t.equal(r.code, 2, 'exit 2');
    t.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err.trim()}`);
    t.match(r.err, /holds 5 characters: use at least 16/);
  });
}
