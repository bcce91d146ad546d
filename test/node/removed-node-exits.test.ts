/**
 * A member removed from the cluster exits by itself (etcd: "the member has been permanently
 * removed from the cluster"), on four real `synod node` processes:
 * - a running follower removed with `synod member remove` exits 0 with SYNOD_ERR_NODE_REMOVED;
 * - a member that was down while it was removed, restarted with its old data directory,
 *   finds out (no leader ever answers it; the members say so) and exits too;
 * - the members left keep serving writes.
 */
import type { ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { runSynod as cli, NodeProcesses, until } from '../helpers/node-processes.js';

const ADMIN = 'the-admin-secret-of-removal-tests-01';

function exited(child: ChildProcess | undefined): Promise<number | null> {
  if (!child) return Promise.resolve(null);
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  return new Promise((resolve) => child.once('exit', (code) => resolve(code)));
}

interface StatusJson {
  nodes: { id: string; role?: string; voters?: string[]; error?: string }[];
}

t.test('removed members exit by themselves', async (t) => {
  const ids = ['n1', 'n2', 'n3', 'n4'];
  const nodes = await NodeProcesses.create(ids);
  t.teardown(() => nodes.close());
  const adminFile = path.join(nodes.dir, 'admin.key');
  writeFileSync(adminFile, `${ADMIN}\n`);
  nodes.startAll(() => ['--admin-secret-file', adminFile]);
  const clusterOf = (members: string[]) =>
    members.map((id) => `${id}=${nodes.node(id).url}`).join(',');
  const statusOf = async (members: string[]) => {
    const r = await cli([
      'status',
      '--cluster',
      clusterOf(members),
      '--secret-file',
      nodes.secretFile,
      '--json',
    ]);
    if (r.code !== 0) return undefined;
    return JSON.parse(r.out) as StatusJson;
  };
  const leaderAmong = async (members: string[], voters: number) => {
    const s = await statusOf(members);
    const l = s?.nodes.find((n) => n.role === 'leader');
    return l && l.voters?.length === voters ? l.id : undefined;
  };
  const remove = (members: string[], id: string) =>
    until(
      `${id} removed`,
      async () => {
        const r = await cli([
          'member',
          'remove',
          '--cluster',
          clusterOf(members),
          '--id',
          id,
          '--secret-file',
          nodes.secretFile,
          '--admin-secret-file',
          adminFile,
        ]);
        return r.code === 0 ? r : undefined;
      },
      60_000,
      500,
    );

  const leader = await until('a leader of four voters', () => leaderAmong(ids, 4), 90_000);
  const [running, downed] = ids.filter((id) => id !== leader) as [string, string];
  t.comment(`leader ${leader}; removing running ${running}, then ${downed} while it is down`);

  // 1. A running follower is removed: it exits 0 and says why.
  const runningExit = exited(nodes.node(running).child);
  await remove(ids, running);
  const code1 = await Promise.race([
    runningExit,
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 60_000).unref()),
  ]);
  const out1 = nodes.node(running).output;
  t.equal(code1, 0, `${running} exited 0 after its removal`, { output: out1.slice(-2000) });
  t.match(out1, /SYNOD_ERR_NODE_REMOVED/, 'with the stable code');
  t.match(out1, new RegExp(`${running} was removed from the cluster`), 'saying what happened');
  t.match(out1, /--join/, 'and how to become a member again');

  // 2. A member is killed, removed while down, and restarted with its old data directory.
  const left = ids.filter((id) => id !== running);
  await nodes.kill(downed);
  await remove(left, downed);
  const members = left.filter((id) => id !== downed);
  await until('a leader of two voters', () => leaderAmong(members, 2), 60_000);
  nodes.start(downed);
  const code2 = await Promise.race([
    exited(nodes.node(downed).child),
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 90_000).unref()),
  ]);
  const out2 = nodes.node(downed).output;
  t.equal(code2, 0, `${downed}, restarted after its removal, exited 0`, {
    output: out2.slice(-2000),
  });
  t.match(out2, /SYNOD_ERR_NODE_REMOVED/, 'with the stable code');

  // 3. The members left serve writes; they never exited.
  const put = await cli([
    'kv',
    'put',
    'after-removals',
    'yes',
    '--cluster',
    clusterOf(members),
    '--secret-file',
    nodes.secretFile,
  ]);
  t.equal(put.code, 0, `a write on ${members.join(', ')}`, { err: put.err });
  for (const id of members) t.equal(nodes.node(id).child?.exitCode, null, `${id} still runs`);

  // 4. A member that joined with --join is killed, removed while down, and restarted with its
  // data directory and the members as --peers (as the chaos harness restarts it). It saved
  // its commit index only when it first adopted a term, before the entries that added it
  // arrived, so it restarts with no configuration applied; nobody tells it the commit index
  // (the leader no longer replicates to it). A chaos run (seed 913809) had such a node run on
  // for 30 s: it counted as never having been a member, so its probes did nothing.
  const joiners = await NodeProcesses.create(['n5']);
  t.teardown(() => joiners.close());
  const joiner = joiners.node('n5');
  const voters = members.length + 1;
  joiners.start('n5', ['--join', clusterOf(members), '--admin-secret-file', adminFile]);
  const all = () =>
    [...members, 'n5']
      .map((id) => `${id}=${(id === 'n5' ? joiner : nodes.node(id)).url}`)
      .join(',');
  await until(
    'n5 a voter',
    async () => {
      const r = await cli([
        'status',
        '--cluster',
        all(),
        '--secret-file',
        nodes.secretFile,
        '--json',
      ]);
      if (r.code !== 0) return undefined;
      const s = JSON.parse(r.out) as StatusJson;
      const l = s.nodes.find((n) => n.role === 'leader');
      return l?.voters?.length === voters && l.voters.includes('n5') ? l : undefined;
    },
    90_000,
    500,
  );
  // A few writes after it joined, so its log goes on past the entries that added it.
  for (let i = 0; i < 3; i++) {
    await cli([
      'kv',
      'put',
      `joined-${i}`,
      'x',
      '--cluster',
      clusterOf(members),
      '--secret-file',
      nodes.secretFile,
    ]);
  }
  await joiners.kill('n5');
  await remove(members, 'n5');
  await until(
    'a leader of two voters, without n5',
    () => leaderAmong(members, members.length),
    60_000,
  );
  // Whether n5 comes back before or after the members forget it (2 s after the removal
  // commits; then no link is closed with SYNOD_ERR_PEER_REMOVED), it must find out.
  joiners.start('n5', ['--peers', clusterOf(members), '--admin-secret-file', adminFile]);
  const code4 = await Promise.race([
    exited(joiner.child),
    new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 90_000).unref()),
  ]);
  t.equal(code4, 0, 'the joined member, restarted after its removal, exited 0', {
    output: joiner.output.slice(-2000),
  });
  t.match(joiner.output, /SYNOD_ERR_NODE_REMOVED/, 'with the stable code');
});
