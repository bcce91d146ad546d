/**
 * `synod backup full|diff|incr --cluster` and `synod backup agent` lower their CPU priority
 * (`--nice N`, default 10) before they start work, so that on a machine shared with nodes the
 * nodes' writes come first. Run in process against an address where nothing listens (the
 * backup fails at once, after the priority was set): the priority of this thread is what the
 * command set. Niceness only goes up for an unprivileged process, so the checks go upwards.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import { run as backup } from '../../cli/commands/backup.js';
import { captureStderr } from '../helpers/capture-stderr.js';
import { freePort } from '../helpers/node-processes.js';

/** The command's exit code and stderr (stdout dropped). */
async function quietly(fn: () => Promise<number>): Promise<{ code: number; err: string }> {
  const log = console.log;
  console.log = () => {};
  try {
    const r = await captureStderr(fn);
    return { code: r.value, err: r.err };
  } finally {
    console.log = log;
  }
}

/** The nice value of every thread of this process (Linux; undefined elsewhere). */
function threadNices(): number[] | undefined {
  try {
    return readdirSync('/proc/self/task').flatMap((tid) => {
      try {
        const st = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
        return [Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[16])];
      } catch {
        return []; // the thread ended in between
      }
    });
  } catch {
    return undefined;
  }
}

t.test('--nice sets the priority before the work; bad values are usage errors', async (t) => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-live-nice-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const cluster = `ws://127.0.0.1:${await freePort()}`;
  const repo = path.join(dir, 'repo');
  const start = os.getPriority(0);
  if (start > 4) {
    t.comment(`skipped: this test process already runs at nice ${start}`);
    t.pass('nothing to check from a process that already runs at nice > 4');
    return;
  }
  for (const bad of ['20', '-1', 'low']) {
    const r = await quietly(() =>
      backup(['full', '--cluster', cluster, '--repo', repo, '--nice', bad]),
    );
    t.equal(r.code, 2, `--nice ${bad}: exit 2`);
    t.match(r.err, /--nice must be an integer/, 'the message names the option');
    t.equal(os.getPriority(0), start, 'and the priority is unchanged');
  }
  const zero = await quietly(() =>
    backup(['full', '--cluster', cluster, '--repo', repo, '--nice', '0']),
  );
  t.equal(zero.code, 1, 'an unreachable cluster is exit 1');
  t.equal(os.getPriority(0), start, '--nice 0 leaves the priority as it was');
  const before = threadNices();
  const four = await quietly(() =>
    backup(['incr', '--cluster', cluster, '--repo', repo, '--nice', '4']),
  );
  t.equal(four.code, 1, 'an unreachable cluster is exit 1');
  t.equal(os.getPriority(0), 4, '--nice 4: the process runs at nice 4');
  if (before) {
    // V8's own threads (started with the process) do not inherit a thread's nice value.
    t.ok(before.length > 1 && before.some((n) => n < 4), `threads before: ${before.join(',')}`);
    const after = threadNices() ?? [];
    t.ok(
      after.length > 1 && after.every((n) => n >= 4),
      `every thread at nice 4 or more: ${after.join(',')}`,
    );
  }
  const dflt = await quietly(() => backup(['agent', '--cluster', cluster, '--repo', repo]));
  t.not(dflt.code, 0, 'the agent cannot reach the cluster either');
  t.equal(os.getPriority(0), 10, 'by default at nice 10');
  const all = threadNices();
  if (all)
    t.ok(
      all.every((n) => n >= 10),
      `every thread at nice 10: ${all.join(',')}`,
    );
});
