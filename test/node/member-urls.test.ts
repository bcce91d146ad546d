/**
 * `node.members` (the member URLs nodes push to each other) on the admin actor of each node
 * kind: a URL the transport refuses (here one without a port) must change nothing — the member
 * keeps the URL it had, the other entries of the same push are still learned, and the admin
 * actor goes on answering. The leaderless node used to forget the member altogether (it set the
 * new URL, then deleted the member when the transport refused it); the Raft and Multi-Paxos
 * nodes kept the refused URL and threw out of the handler, dropping the rest of the push.
 */
import t from 'tap';
import type { Replies } from '../../lib/actor.js';
import type { JoinReply } from '../../lib/node/join-cluster.js';
import type { AdminMsg, NodeStatus } from '../../lib/node/node-admin.js';
import { freePort } from '../helpers/node-processes.js';
import { clientOf, startOneOf } from '../helpers/one-node.js';

for (const protocol of ['raft', 'paxos', 'gossip'] as const) {
  t.test(`${protocol}: a member URL the transport refuses changes nothing`, async (t) => {
    const one = await startOneOf(t, `member-urls-${protocol}`, protocol);
    const { system } = await clientOf(t, one, 'probe');
    const members = async (): Promise<Record<string, string>> => {
      // Asked after the push on the same link: the admin actor has handled the push by then.
      const s = await system.ask(
        'n1/admin',
        { type: 'node.status' } as unknown as AdminMsg & Replies<NodeStatus>,
        10_000,
      );
      return s.members;
    };
    const push = (m: Record<string, string>) =>
      system.send('n1/admin', { type: 'node.members', members: m });
    // Unused ports: the transport dials them in vain, which is all this test needs.
    const n2 = `ws://127.0.0.1:${await freePort()}`;
    const n3 = `ws://127.0.0.1:${await freePort()}`;

    push({ n2 });
    t.equal((await members()).n2, n2, 'a good URL is learned');

    push({ n2: 'ws://127.0.0.1', n3 });
    const after = await members();
    t.equal(after.n2, n2, 'the member keeps the URL it had when a push brings a refused one');
    t.equal(after.n3, n3, 'the rest of that push is learned');

    push({ n4: 'ws://127.0.0.1' });
    t.notOk('n4' in (await members()), 'a new member with a refused URL stays unknown');
  });
}

t.test('raft: a join whose URL the transport refuses is refused and changes nothing', async (t) => {
  const one = await startOneOf(t, 'member-urls-join', 'raft');
  const { system } = await clientOf(t, one, 'probe');
  const status = () =>
    system.ask(
      'n1/admin',
      { type: 'node.status' } as unknown as AdminMsg & Replies<NodeStatus>,
      10_000,
    );
  const r = await system.ask(
    'n1/admin',
    { type: 'node.join', id: 'n9', url: 'ws://127.0.0.1' } as unknown as AdminMsg &
      Replies<JoinReply>,
    10_000,
  );
  t.equal(r.ok, false, 'the join is refused');
  t.equal(r.code, 'SYNOD_ERR_JOIN_REFUSED', 'with the refusal code');
  t.match(r.message, /ws:\/\/127\.0\.0\.1/, 'naming the URL');
  const s = await status();
  t.notOk('n9' in s.members, 'the refused URL is not recorded as a member URL');
  t.same(s.learners, [], 'nor is the node added to the membership');
});
