/**
 * The backup agent's life seen from the cluster: a learner joins (`node.join`, learner), the
 * leader dials it, it leaves (`node.leave`), and then the leader forgets it — its link closes
 * with SYNOD_ERR_PEER_REMOVED and nothing redials it, even though its address still answers
 * (before `removePeer` the leader kept dialling a departed learner for ever).
 */
import t from 'tap';
import type { AdminMsg } from '../../lib/node/node-admin.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';
import { until } from '../helpers/node-processes.js';
import { clientOf, startOneNode } from '../helpers/one-node.js';

t.test('a learner that leaves is forgotten by the leader transport', async (t) => {
  const one = await startOneNode(t, 'learner-leaves');
  const { node } = one;
  // The "agent": a listening transport (the leader dials learners at their URL).
  const { system, transport: agent } = await clientOf(t, one, 'agent', { listen: true });
  const url = agent.address()?.url as string;
  const joined = (await system.ask(
    'n1/admin',
    { type: 'node.join', id: 'agent', url, learner: true } as AdminMsg & { type: 'node.join' },
    10_000,
  )) as { ok: boolean; message: string };
  t.ok(joined.ok, joined.message);
  t.ok((await node.status()).learners.includes('agent'), 'the agent is a learner');
  await until('the leader linked to the agent', () =>
    node.transport.linkStatus('agent')?.state === 'up' ? true : undefined,
  );
  const left = (await system.ask(
    'n1/admin',
    { type: 'node.leave', id: 'agent' } as AdminMsg & { type: 'node.leave' },
    10_000,
  )) as { ok: boolean; message: string };
  t.ok(left.ok, `the answer to its own node.leave reaches it: ${left.message}`);
  // The agent exits; its address keeps answering (a new process listening there, dialling
  // nobody), as a host whose agent stopped — the leader must not keep a link to it.
  const agentPort = agent.address()?.port as number;
  await system.shutdown();
  await agent.close(100);
  const after = await WebSocketTransport.create({
    nodeId: 'agent',
    cluster: 'learner-leaves',
    listen: { host: '127.0.0.1', port: agentPort },
    random: new Random(6),
    logger: { log: () => {} },
  });
  t.teardown(() => after.close(100));
  await until('the leader forgot the agent', () =>
    node.transport.peers().includes('agent') ? undefined : true,
  );
  const s = await node.status();
  t.notOk(s.learners.includes('agent'), 'no longer a learner');
  t.notOk(
    s.links.some((l) => l.peer === 'agent'),
    'no link to the agent in the status (nothing redials it)',
  );
  t.notOk('agent' in s.members, 'not in the member addresses');
  t.equal(node.transport.linkStatus('agent'), undefined, 'no link state kept for it');
});
