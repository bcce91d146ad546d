/**
 * lib/node/paxos-admission.ts: a Multi-Paxos node's actors hear members only (finding F6);
 * a non-member may only pull chosen slots (`mp.catchup` to the learner, the backup agent);
 * a member speaks only for its own actors. Other actors and replies are not looked at.
 * The end-to-end check is test/chaos/cluster-fuzz.test.ts (the Multi-Paxos subtest).
 */
import t from 'tap';
import type { Envelope } from '../../lib/envelope.js';
import { paxosAdmission } from '../../lib/node/paxos-admission.js';

const admit = paxosAdmission('n1', ['n1', 'n2', 'n3']);
const env = (to: string, m: unknown, k: Envelope['k'] = 'tell'): Envelope => ({ v: 1, k, to, m });
const decide = (from: string) => ({ type: 'mp.decide', from, entries: new Uint8Array(0) });

t.test('members are heard, speaking for themselves', async (t) => {
  for (const role of ['acceptor', 'proposer', 'learner'])
    t.equal(admit(env(`n1/paxos/${role}`, decide('n2/paxos/proposer')), 'n2'), undefined, role);
  t.equal(
    admit(env('n1/paxos/learner', { type: 'mp.catchup', from: 'n3/paxos/learner' }), 'n3'),
    undefined,
  );
  t.equal(
    admit(env('n1/paxos/acceptor', { type: 'mp.accept' }), 'n2'),
    undefined,
    'no from to check',
  );
});

t.test('a member claiming another member is refused', async (t) => {
  const no = admit(env('n1/paxos/learner', decide('n3/paxos/proposer')), 'n2');
  t.equal(no?.code, 'SYNOD_ERR_FORGED_SENDER');
  t.match(no?.reason, /claims to come from n3\/paxos\/proposer, but n2 sent it/);
});

t.test('a non-member is refused, whatever it claims', async (t) => {
  for (const m of [
    decide('intruder/paxos/proposer'),
    decide('n2/paxos/proposer'),
    {
      type: 'mp.prepare',
      from: 'intruder/x',
      ballot: { round: 2 ** 53 - 1, proposer: 'x' },
      fromSlot: 0,
    },
    { type: 'mp.catchup-reply', from: 'intruder/x', entries: new Uint8Array(0), decidedUpTo: 9 },
    null,
    'junk',
  ]) {
    for (const role of ['acceptor', 'proposer', 'learner']) {
      const no = admit(env(`n1/paxos/${role}`, m), 'intruder');
      t.equal(
        no?.code,
        'SYNOD_ERR_PAXOS_NOT_MEMBER',
        `${JSON.stringify(m)?.slice(0, 40)} to ${role}`,
      );
    }
  }
  t.match(
    admit(env('n1/paxos/learner', decide('x/y')), 'intruder')?.reason,
    /not a Multi-Paxos member \(members: n1, n2, n3\)/,
  );
});

t.test('a non-member may pull chosen slots from a learner, for itself only', async (t) => {
  const pull = (from: string) => ({ type: 'mp.catchup', from, fromSlot: 1, toSlot: 512 });
  t.equal(
    admit(env('n1/paxos/learner', pull('backup/pull')), 'backup'),
    undefined,
    'the backup agent',
  );
  t.equal(
    admit(env('n1/paxos/acceptor', pull('backup/pull')), 'backup')?.code,
    'SYNOD_ERR_PAXOS_NOT_MEMBER',
    'not the acceptor',
  );
  t.equal(
    admit(env('n1/paxos/learner', pull('n2/paxos/learner')), 'backup')?.code,
    'SYNOD_ERR_FORGED_SENDER',
    'the reply would go to n2',
  );
});

t.test('a non-member may ask a proposer for the read index', async (t) => {
  const read = { type: 'mp.read', barrier: 'agent-backup' };
  t.equal(admit(env('n1/paxos/proposer', read, 'ask'), 'agent'), undefined);
  t.equal(
    admit(env('n1/paxos/acceptor', read, 'ask'), 'agent')?.code,
    'SYNOD_ERR_PAXOS_NOT_MEMBER',
  );
});

t.test('other actors, replies and local deliveries are not looked at', async (t) => {
  t.equal(admit(env('n1/kv', { type: 'kv.get' }), 'intruder'), undefined);
  t.equal(admit(env('n1/admin', { type: 'node.status' }), 'intruder'), undefined);
  t.equal(admit(env('n1/paxos/proposer', { ok: true }, 'reply'), 'intruder'), undefined);
  t.equal(admit(env('n1/paxos/learner', decide('n1/paxos/proposer')), 'n1'), undefined);
  t.equal(admit(env('n1/paxos/learner', decide('n1/paxos/proposer')), undefined), undefined);
  t.equal(admit(env('n2/paxos/learner', decide('x/y')), 'intruder'), undefined, 'not this node');
});
