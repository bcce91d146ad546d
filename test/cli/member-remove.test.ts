/**
 * `synod member remove` on three real `synod node` processes (Raft): refused without or with
 * a wrong admin secret, refused for the leader itself; a dead member is removed, every node
 * forgets its link (the transport's removePeer: nothing keeps dialling it), writes go on with
 * two voters, and the member joins again with a fresh data directory (`--join`).
 */
import { rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import t from 'tap';
import { ActorSystem } from '../../lib/actor-system.js';
import { silentLogger } from '../../lib/logger.js';
import { makeAdminProof } from '../../lib/node/admin-auth.js';
import type { AdminMsg, ControlReply, NodeStatus } from '../../lib/node/node-admin.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { runSynod as cli, NodeProcesses, TEST_SECRET, until } from '../helpers/node-processes.js';

const ADMIN = 'the-admin-secret-of-this-test-0001';

t.test('synod member remove: refusals, removal, links forgotten, re-join', async (t) => {
  const nodes = await NodeProcesses.create(['n1', 'n2', 'n3']);
  t.teardown(() => nodes.close());
  const adminFile = path.join(nodes.dir, 'admin.key');
  writeFileSync(adminFile, `${ADMIN}\n`);
  const wrongFile = path.join(nodes.dir, 'wrong-admin.key');
  writeFileSync(wrongFile, 'not-the-admin-secret-at-all-00001\n');
  const extra = ['--admin-secret-file', adminFile];
  nodes.startAll(() => extra);

  const transport = await WebSocketTransport.create({
    nodeId: 'member-test-probe',
    peers: [...nodes.nodes.values()].map((n) => `${n.id}=${n.url}`),
    secret: TEST_SECRET,
    random: new Random(11),
    logger: { log: () => {} },
  });
  const probe = new ActorSystem({ nodeId: 'member-test-probe', transport, logger: silentLogger });
  t.teardown(async () => {
    await probe.shutdown();
    await transport.close(100);
  });
  const status = (id: string) =>
    probe
      .ask(`${id}/admin`, { type: 'node.status' } as AdminMsg & { type: 'node.status' }, 1500)
      .then(
        (s) => s as NodeStatus,
        () => undefined,
      );
  const leaderOf = async (ids: string[]) => {
    for (const id of ids) {
      const s = await status(id);
      if (s?.role === 'leader') return s;
    }
    return undefined;
  };
  // A leader all three agree on (same term): right after start-up, under load, a split
  // election can still move the leadership between reading it and the commands below.
  const leader = await until(
    'three nodes agreeing on one leader with three voters',
    async () => {
      const all = await Promise.all(['n1', 'n2', 'n3'].map(status));
      const l = all.find((s) => s?.role === 'leader');
      const agreed = all.every((s) => s && l && s.term === l.term && s.leader === l.id);
      return l && l.voters.length === 3 && agreed ? l : undefined;
    },
    90_000,
  );
  const victim = ['n1', 'n2', 'n3'].find((x) => x !== leader.id) as string;
  const others = ['n1', 'n2', 'n3'].filter((x) => x !== victim);
  const cluster = `${leader.id}=${nodes.node(leader.id).url}`;
  t.comment(`leader ${leader.id}; removing ${victim}`);

  const noSecret = await cli([
    'member',
    'remove',
    '--cluster',
    cluster,
    '--id',
    victim,
    '--secret-file',
    nodes.secretFile,
  ]);
  t.equal(noSecret.code, 2, 'without --admin-secret-file: usage error');
  t.match(noSecret.err, /needs --admin-secret-file/);
  const wrong = await cli([
    'member',
    'remove',
    '--cluster',
    cluster,
    '--id',
    victim,
    '--secret-file',
    nodes.secretFile,
    '--admin-secret-file',
    wrongFile,
  ]);
  t.equal(wrong.code, 1, 'a wrong admin secret: exit 1');
  t.match(wrong.err, /wrong admin secret/, `refused by the node: ${wrong.err.trim()}`);
  const bad = (await probe.ask(
    `${leader.id}/admin`,
    { type: 'node.remove', id: victim, at: Date.now(), proof: 'ab'.repeat(32) } as AdminMsg & {
      type: 'node.remove';
    },
    10_000,
  )) as ControlReply;
  t.same(
    [bad.ok, /^SYNOD_ERR_ADMIN_REFUSED/.test(bad.message)],
    [false, true],
    `a forged proof is refused: ${bad.message}`,
  );
  const stale = (await probe.ask(
    `${leader.id}/admin`,
    {
      type: 'node.remove',
      id: victim,
      ...makeAdminProof(ADMIN, 'synod', 'node.remove', victim, Date.now() - 3_600_000),
    } as AdminMsg & { type: 'node.remove' },
    10_000,
  )) as ControlReply;
  t.equal(stale.ok, false, `an hour-old proof is refused: ${stale.message}`);
  const self = await cli([
    'member',
    'remove',
    '--cluster',
    cluster,
    '--id',
    leader.id,
    '--secret-file',
    nodes.secretFile,
    '--admin-secret-file',
    adminFile,
  ]);
  t.equal(self.code, 1, 'removing the leader itself is refused');
  t.match(self.err, /SYNOD_ERR_REMOVE_LEADER|is the leader/);
  t.same((await status(leader.id))?.voters.length, 3, 'nothing changed so far');

  // The member dies; the operator removes it.
  await nodes.kill(victim);
  const removed = await until(
    `${victim} removed`,
    async () => {
      const r = await cli([
        'member',
        'remove',
        '--cluster',
        cluster,
        '--id',
        victim,
        '--secret-file',
        nodes.secretFile,
        '--admin-secret-file',
        adminFile,
      ]);
      // Right after the kill the leader may still count the victim active: retry.
      return r.code === 0 ? r : undefined;
    },
    60_000,
    500,
  );
  t.match(removed.out, new RegExp(`${victim} removed from the cluster`), removed.out.trim());
  for (const id of others) {
    const s = await until(
      `${id} without ${victim}`,
      async () => {
        const st = await status(id);
        return st && !st.voters.includes(victim) && !st.links.some((l) => l.peer === victim)
          ? st
          : undefined;
      },
      30_000,
    );
    t.same(s.voters.sort(), [...others].sort(), `${id}: voters without ${victim}`);
    t.notOk(
      s.links.some((l) => l.peer === victim),
      `${id}: no link to ${victim} any more (not redialled)`,
    );
  }
  const list = await cli([
    'member',
    'list',
    '--cluster',
    cluster,
    '--secret-file',
    nodes.secretFile,
    '--json',
  ]);
  t.equal(list.code, 0, 'member list');
  t.same(JSON.parse(list.out).voters.sort(), [...others].sort(), 'member list shows two voters');

  // It comes back as a new member: fresh data directory, --join through the leader.
  rmSync(nodes.node(victim).dataDir, { recursive: true, force: true });
  nodes.start(victim, [...extra, '--join', nodes.node(leader.id).url]);
  const back = await until(
    `${victim} a voter again`,
    async () => {
      const l = await leaderOf(others);
      return l?.voters.includes(victim) ? l : undefined;
    },
    90_000,
  ).catch((err: Error) => {
    t.comment(`${victim} output:\n${nodes.node(victim).output.slice(-3000)}`);
    t.comment(`${leader.id} output:\n${nodes.node(leader.id).output.slice(-3000)}`);
    throw err;
  });
  t.same(back.voters.sort(), ['n1', 'n2', 'n3'], `${victim} re-joined as a voter`);
});
