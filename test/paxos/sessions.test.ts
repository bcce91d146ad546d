import t from 'tap';
import { ClientSessions } from '../../actors/paxos/sessions.js';

t.test('a (clientId, seq) is applied once and its result remembered', async (t) => {
  const s = new ClientSessions(4);
  t.same(s.check('c', 1), { duplicate: false });
  s.record('c', 1, 'r1');
  t.same(s.check('c', 1), { duplicate: true, known: true, result: 'r1' });
  t.same(s.check('d', 1), { duplicate: false }, 'sessions are per client');
});

t.test('out-of-order seqs inside the window still apply once', async (t) => {
  const s = new ClientSessions(4);
  s.record('c', 3, 'r3');
  t.same(s.check('c', 2), { duplicate: false }, 'seq 2 arrived after 3: not applied yet');
  s.record('c', 2, 'r2');
  t.same(s.check('c', 2), { duplicate: true, known: true, result: 'r2' });
});

t.test('seqs below the window count as applied (at most once wins)', async (t) => {
  const s = new ClientSessions(4);
  for (let i = 1; i <= 10; i++) s.record('c', i, i);
  t.same(s.check('c', 5), { duplicate: true, known: false });
  t.same(s.check('c', 6), { duplicate: true, known: false });
  t.same(s.check('c', 7), { duplicate: true, known: true, result: 7 });
  t.same(s.check('c', 11), { duplicate: false });
});

t.test('sessions survive a snapshot image round trip', async (t) => {
  const s = new ClientSessions(8);
  s.record('b', 1, { ok: true });
  s.record('a', 2, null);
  const back = ClientSessions.fromImage(s.toImage());
  t.same(back.check('b', 1), { duplicate: true, known: true, result: { ok: true } });
  t.same(back.check('a', 2), { duplicate: true, known: true, result: null });
  t.equal(back.size, 2);
  t.equal(back.window, 8);
});

t.test('pruning is lazy but invisible: checks and images only see the window', async (t) => {
  const s = new ClientSessions(4);
  for (let i = 1; i <= 9; i++) s.record('c', i, i); // 9 results held (prune waits for > 8)
  t.same(s.check('c', 5), { duplicate: true, known: false }, 'a lingering result is not used');
  t.same(s.check('c', 6), { duplicate: true, known: true, result: 6 });
  const image = s.toImage();
  t.same(image.clients[0], ['c', 9, [6, 7, 8, 9], [6, 7, 8, 9]], 'the image holds the window');
  for (let i = 10; i <= 1000; i++) s.record('c', i, i);
  const back = ClientSessions.fromImage(s.toImage());
  t.same(back.check('c', 996), { duplicate: true, known: false });
  t.same(back.check('c', 997), { duplicate: true, known: true, result: 997 });
  t.same(back.check('c', 1001), { duplicate: false });
});

t.test('an image of the earlier format ([seq, result] pairs) is still read', async (t) => {
  const back = ClientSessions.fromImage({
    window: 4,
    clients: [
      [
        'c',
        5,
        [
          [4, 'r4'],
          [5, 'r5'],
        ],
      ],
    ],
  });
  t.same(back.check('c', 4), { duplicate: true, known: true, result: 'r4' });
  t.same(back.check('c', 1), { duplicate: true, known: false });
  t.same(back.check('c', 6), { duplicate: false });
});

t.test('out-of-order results come out of the image in seq order', async (t) => {
  const s = new ClientSessions(8);
  for (const q of [3, 1, 2]) s.record('c', q, `r${q}`);
  t.same(s.toImage().clients[0], ['c', 3, [1, 2, 3], ['r1', 'r2', 'r3']]);
});
