/**
 * The operator controls a dashboard sends to a node's admin actor — `node.cut` (isolate),
 * `node.heal` and `node.transfer` — are refused by the node itself without a proof of the admin
 * secret, as `node.stop`/`node.restart` are: holding the cluster secret (every KV client does)
 * must not be enough to partition the cluster or move its leader. A Raft node, a Multi-Paxos
 * node and a leaderless (gossip) node, each alone on loopback, asked by a client that holds
 * only the cluster secret.
 */
import t from 'tap';
import type { Replies } from '../../lib/actor.js';
import { makeAdminProof } from '../../lib/node/admin-auth.js';
import type { AdminMsg, ControlReply } from '../../lib/node/node-admin.js';
import { clientOf, startOneNode, startOneOf } from '../helpers/one-node.js';

const ADMIN = 'the-admin-secret-of-this-test';

for (const protocol of ['raft', 'paxos', 'gossip'] as const) {
  t.test(`${protocol}: isolate, heal and transfer need the admin secret`, async (t) => {
    const cluster = `admin-controls-${protocol}`;
    const one = await startOneOf(t, cluster, protocol, { adminSecret: ADMIN });
    const { system } = await clientOf(t, one, 'probe');
    const ask = (msg: Record<string, unknown>) =>
      system.ask('n1/admin', msg as unknown as AdminMsg & Replies<ControlReply>, 10_000);
    const proof = (secret: string, action: string, target: string) =>
      makeAdminProof(secret, cluster, action, target, Date.now());
    const cut = async () => (await one.node.status()).cut;

    // Without a proof, or with another secret's: refused, and nothing is cut.
    for (const [what, extra] of [
      ['no proof', {}],
      ['an empty proof', { at: Date.now(), proof: '' }],
      ['a proof of another secret', proof('another-secret', 'node.cut', 'n1')],
      ['a proof for another node', proof(ADMIN, 'node.cut', 'n2')],
      ['a proof for another action', proof(ADMIN, 'node.heal', 'n1')],
    ] as const) {
      const r = await ask({ type: 'node.cut', peers: ['x'], ...extra });
      t.equal(r.ok, false, `node.cut with ${what} is refused`);
      t.match(r.message, /SYNOD_ERR_ADMIN_REFUSED/, 'with the admin refusal code');
    }
    t.same(await cut(), [], 'no link was cut');
    const healAnon = await ask({ type: 'node.heal' });
    t.equal(healAnon.ok, false, 'node.heal without a proof is refused');
    t.match(healAnon.message, /SYNOD_ERR_ADMIN_REFUSED/);
    const transferAnon = await ask({ type: 'node.transfer', to: 'n2' });
    t.equal(transferAnon.ok, false, 'node.transfer without a proof is refused');
    t.match(transferAnon.message, /SYNOD_ERR_ADMIN_REFUSED/);

    // With the proof: obeyed.
    const ok = await ask({ type: 'node.cut', peers: ['x'], ...proof(ADMIN, 'node.cut', 'n1') });
    t.equal(ok.ok, true, `node.cut with the proof: ${ok.message}`);
    t.same(await cut(), ['x'], 'the link is cut');
    const healed = await ask({ type: 'node.heal', ...proof(ADMIN, 'node.heal', 'n1') });
    t.equal(healed.ok, true, `node.heal with the proof: ${healed.message}`);
    t.same(await cut(), [], 'healed');
    const transfer = await ask({
      type: 'node.transfer',
      to: 'n2',
      ...proof(ADMIN, 'node.transfer', 'n2'),
    });
    t.notMatch(transfer.message, /SYNOD_ERR_ADMIN_REFUSED/, 'a proved transfer is not refused');
  });
}

t.test('a node without an admin secret refuses isolate and heal', async (t) => {
  const one = await startOneNode(t, 'admin-controls-none');
  const { system } = await clientOf(t, one, 'probe');
  const r = await system.ask(
    'n1/admin',
    {
      type: 'node.cut',
      peers: ['x'],
      ...makeAdminProof(ADMIN, 'admin-controls-none', 'node.cut', 'n1', Date.now()),
    } as unknown as AdminMsg & Replies<ControlReply>,
    10_000,
  );
  t.equal(r.ok, false, 'refused');
  t.match(r.message, /SYNOD_ERR_ADMIN_REFUSED: this node has no admin secret/);
});
