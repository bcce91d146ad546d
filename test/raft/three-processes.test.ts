/**
 * Raft over WebSockets in three real `synod node` processes with file storage (fsync on):
 * they elect a leader, take writes, the leader is SIGKILLed, a new leader is elected and
 * takes more writes, the old leader restarts from its data directory, and every write that
 * was acknowledged to the client is then present on all three nodes — read from each node's
 * own state machine (`eventual` reads with forwarding off, so the node itself answers).
 *
 * Waits are bounded polls of observable node state (the KV status of each node), never
 * fixed sleeps.
 */
import t from 'tap';
import type { StatusValue } from '../../actors/kv/messages.js';
import { connect, type RemoteKvClient } from '../../lib/kv-client/connect.js';
import { NodeProcesses, TEST_SECRET, until } from '../helpers/node-processes.js';

async function statusOf(client: RemoteKvClient, id: string): Promise<StatusValue | undefined> {
  const r = await client.status(id);
  return r.outcome === 'ok' ? r.value : undefined;
}

t.test('three processes: SIGKILL the leader, restart it, no acknowledged write lost', async (t) => {
  const ids = ['a', 'b', 'c'];
  const procs = await NodeProcesses.create(ids);
  t.teardown(() => procs.close());
  procs.startAll();
  const client = await connect(procs.peerList().split(','), {
    secret: TEST_SECRET,
    timeoutMs: 10_000,
  });
  t.teardown(() => client.disconnect());

  const leaderAmong = async (among: string[]) => {
    const st = await Promise.all(among.map((id) => statusOf(client, id)));
    const leaders = new Set(st.map((s) => s?.leader));
    const leader = st[0]?.leader;
    // every asked node answers and names the same leader, which is one of them
    return st.every((s) => s !== undefined) &&
      leaders.size === 1 &&
      leader !== undefined &&
      among.includes(leader)
      ? leader
      : undefined;
  };
  const first = await until('the three nodes to agree on a leader', () => leaderAmong(ids), 90_000);
  t.ok(first, `leader ${first} elected`);

  const acked = new Map<string, string>();
  const write = async (key: string, value: string) => {
    const r = await client.put(key, value);
    if (r.outcome === 'ok') acked.set(key, value);
    return r.outcome;
  };
  for (let i = 0; i < 20; i++) await write(`before-${i}`, `v${i}`);
  t.equal(acked.size, 20, 'all 20 writes before the failure acknowledged');

  await procs.kill(first, 'SIGKILL');
  const rest = ids.filter((id) => id !== first);
  const second = await until('a new leader among the survivors', () => leaderAmong(rest), 90_000);
  t.not(second, first, `new leader ${second} after SIGKILL of ${first}`);

  let after = 0;
  for (let i = 0; i < 20; i++) if ((await write(`after-${i}`, `w${i}`)) === 'ok') after++;
  t.ok(after >= 1, `${after} of 20 writes after the failover acknowledged`);

  procs.start(first);
  const target = (await statusOf(client, second))?.commitIndex ?? 0;
  await until(
    `every node to apply up to index ${target}`,
    async () => {
      const st = await Promise.all(ids.map((id) => statusOf(client, id)));
      return st.every((s) => s !== undefined && s.appliedIndex >= target) ? true : undefined;
    },
    90_000,
  );
  t.pass(`${first} restarted and all three applied index ${target}`);

  for (const id of ids) {
    const missing: string[] = [];
    for (const [key, value] of acked) {
      const r = await client.get(key, { level: 'eventual', forward: false, node: id });
      if (r.outcome !== 'ok' || r.servedBy !== id || r.value.value !== value) missing.push(key);
    }
    t.same(missing, [], `${id} holds all ${acked.size} acknowledged writes`);
  }
});
