import t from 'tap';
import { decodeReplicaImage, encodeReplicaImage } from '../../actors/paxos/replica-image.js';
import { ClientSessions } from '../../actors/paxos/sessions.js';
import { decodeValue, encodeValue } from '../../lib/codec.js';
import { Random } from '../../lib/random.js';

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

t.test('sessions agree with a plain model on random seq orders (seeded)', async (t) => {
  const seed = Number(process.env.SYNOD_SEED ?? 7);
  const random = new Random(seed);
  const window = 8;
  const cs = new ClientSessions(window);
  // the model: every seq applied, with its result, and the highest seq per client
  const applied = new Map<string, Map<number, unknown>>();
  let bad: string | undefined;
  for (let step = 0; step < 4000 && bad === undefined; step++) {
    const client = `c${random.int(3)}`;
    const seen = applied.get(client) ?? new Map<number, unknown>();
    applied.set(client, seen);
    const max = Math.max(0, ...seen.keys());
    // mostly the next seq, sometimes a retry or a seq a little ahead (pipelining)
    const r = random.int(10);
    const seq = r < 6 ? max + 1 : r < 8 ? Math.max(1, max - random.int(window * 2)) : max + 2;
    const check = cs.check(client, seq);
    const below = seq <= max - window;
    const want = below
      ? { duplicate: true, known: false }
      : seen.has(seq)
        ? { duplicate: true, known: true, result: seen.get(seq) }
        : { duplicate: false };
    if (JSON.stringify(check) !== JSON.stringify(want)) {
      bad = `step ${step}: ${client} seq ${seq}: got ${JSON.stringify(check)}, want ${JSON.stringify(want)}`;
      break;
    }
    if (!check.duplicate) {
      cs.record(client, seq, `r${seq}`);
      seen.set(seq, `r${seq}`);
    }
    if (step % 500 === 0) {
      // the image round-trips and holds exactly the seqs inside the window, in order
      const again = ClientSessions.fromImage(cs.toImage());
      if (JSON.stringify(again.toImage()) !== JSON.stringify(cs.toImage())) {
        bad = `step ${step}: the image does not round-trip`;
      }
      for (const c of cs.toImage().clients) {
        const [id, maxSeq, seqs] = c as readonly [string, number, readonly number[], unknown[]];
        const inWindow = [...(applied.get(id)?.keys() ?? [])]
          .filter((q) => q > maxSeq - window)
          .sort((a, b) => a - b);
        if (JSON.stringify(seqs) !== JSON.stringify(inWindow)) {
          bad = `step ${step}: image of ${id} holds ${seqs}, want ${inWindow}`;
        }
      }
    }
  }
  t.equal(bad, undefined, `agrees with the model (seed ${seed}; replay with SYNOD_SEED=${seed})`);
});

t.test('a contiguous window of null results is one tuple in the image (version 2)', async (t) => {
  const s = new ClientSessions(4);
  for (let i = 1; i <= 9; i++) s.record('w', i, null); // a closed-loop writer
  s.record('gap', 1, null);
  s.record('gap', 3, null); // seq 2 missing: not contiguous
  s.record('r', 1, 'x'); // a result that is not null
  s.record('h', 7.5, null); // not an integer
  const image = s.toImage();
  t.same(image.clients, [
    ['gap', 3, [1, 3], [null, null]],
    ['h', 7.5, [7.5], [null]],
    ['r', 1, [1], ['x']],
    ['w', 9, 4],
  ]);
  const back = ClientSessions.fromImage(image);
  t.same(back.check('w', 5), { duplicate: true, known: false });
  t.same(back.check('w', 6), { duplicate: true, known: true, result: null });
  t.same(back.check('w', 9), { duplicate: true, known: true, result: null });
  t.same(back.check('w', 10), { duplicate: false });
  t.same(back.check('gap', 2), { duplicate: false });
  // the image as a replica writes and reads it
  const data = encodeReplicaImage({ sm: new Uint8Array([1]), sessions: image });
  t.equal((decodeValue(data) as { v: number }).v, 2, 'version 2 when a tuple is compact');
  const img = decodeReplicaImage(data);
  t.same(
    img.sessions.clients[3],
    ['w', 9, [6, 7, 8, 9], [null, null, null, null]],
    'read back spelled out (what a backup reads)',
  );
  const again = ClientSessions.fromImage(img.sessions);
  t.same(again.toImage(), image, 'the same table either way');
});

t.test('a table without compact clients is still written as version 1', async (t) => {
  const s = new ClientSessions(4);
  s.record('r', 1, 'x');
  const data = encodeReplicaImage({ sm: new Uint8Array([1]), sessions: s.toImage() });
  t.equal((decodeValue(data) as { v: number }).v, 1);
  t.same(decodeReplicaImage(data).sessions.clients, [['r', 1, [1], ['x']]]);
});

t.test('malformed compact clients and compact clients in version 1 are refused', async (t) => {
  const image = (v: number, c: unknown) =>
    encodeValue({ v, sm: new Uint8Array([1]), sessions: { window: 4, clients: [c] } });
  for (const c of [
    ['w', 9, 0],
    ['w', 9, 5],
    ['w', 9, 1.5],
    ['w', 9.5, 2],
    [7, 9, 2],
  ]) {
    t.throws(() => decodeReplicaImage(image(2, c)), { code: 'SYNOD_ERR_PAXOS_BAD_STATE' });
  }
  t.throws(() => decodeReplicaImage(image(1, ['w', 9, 2])), {
    code: 'SYNOD_ERR_PAXOS_BAD_STATE',
  });
  t.throws(() => decodeReplicaImage(image(3, ['w', 9, [9], [null]])), {
    code: 'SYNOD_ERR_PAXOS_BAD_STATE',
  });
  t.same(decodeReplicaImage(image(2, ['w', 9, 2])).sessions.clients, [
    ['w', 9, [8, 9], [null, null]],
  ]);
});

t.test(
  'run-form clients agree with a plain model through gaps, retries and results (seeded)',
  async (t) => {
    // A client whose window is a run of null results keeps no arrays (the run form); its first
    // gap, out-of-order seq or non-null result spells the run out. Checks and images must be
    // exactly what the model says in either form, across the switch, and after a table is
    // rebuilt from its image (spelled out, as decodeReplicaImage gives it).
    const seed = Number(process.env.SYNOD_SEED ?? 11);
    const random = new Random(seed);
    const window = 6;
    let cs = new ClientSessions(window);
    const applied = new Map<string, Map<number, unknown>>();
    let bad: string | undefined;
    let compactSeen = 0;
    let fullSeen = 0;
    let nullHits = 0;
    for (let step = 0; step < 8000 && bad === undefined; step++) {
      const client = `c${random.int(4)}`;
      const seen = applied.get(client) ?? new Map<number, unknown>();
      applied.set(client, seen);
      const max = Math.max(0, ...seen.keys());
      // mostly the next seq with a null result (a writer); now and then a retry, a gap or a
      // result; client c3 never leaves the run form
      const r = client === 'c3' ? 9 : random.int(60);
      // (a client's first seq is not always 1: seqs below it were never applied)
      const seq =
        seen.size === 0
          ? 1 + random.int(4)
          : r === 0
            ? Math.max(1, max - random.int(window * 2))
            : r === 1
              ? max + 2
              : max + 1;
      const result = r === 2 ? `r${seq}` : null;
      const check = cs.check(client, seq);
      const want =
        seq <= max - window
          ? { duplicate: true, known: false }
          : seen.has(seq)
            ? { duplicate: true, known: true, result: seen.get(seq) }
            : { duplicate: false };
      if (JSON.stringify(check) !== JSON.stringify(want)) {
        bad = `step ${step}: ${client} seq ${seq}: got ${JSON.stringify(check)}, want ${JSON.stringify(want)}`;
        break;
      }
      if (check.duplicate && check.known && check.result === null) nullHits++;
      if (!check.duplicate) {
        cs.record(client, seq, result);
        seen.set(seq, result);
      }
      if (step % 7 !== 0) continue;
      const image = cs.toImage();
      for (const c of image.clients) {
        const id = c[0];
        const m = applied.get(id) ?? new Map<number, unknown>();
        const maxSeq = Math.max(...m.keys());
        const seqs = [...m.keys()].filter((q) => q > maxSeq - window).sort((a, b) => a - b);
        const results = seqs.map((q) => m.get(q));
        const compact =
          seqs.every((q, i) => q === maxSeq - seqs.length + 1 + i) &&
          results.every((x) => x === null);
        const wantImage = compact ? [id, maxSeq, seqs.length] : [id, maxSeq, seqs, results];
        if (compact) compactSeen++;
        else fullSeen++;
        if (JSON.stringify(c) !== JSON.stringify(wantImage)) {
          bad = `step ${step}: image of ${id} is ${JSON.stringify(c)}, want ${JSON.stringify(wantImage)}`;
          break;
        }
      }
      if (step % 350 === 0) {
        // carry on with a table rebuilt from the image (compact clients spelled out)
        const spelled = decodeReplicaImage(
          encodeReplicaImage({ sm: new Uint8Array(), sessions: image }),
        );
        cs = ClientSessions.fromImage(spelled.sessions);
        if (JSON.stringify(cs.toImage()) !== JSON.stringify(image)) {
          bad = `step ${step}: the image does not round-trip`;
        }
      }
    }
    t.equal(bad, undefined, `agrees with the model (seed ${seed}; replay with SYNOD_SEED=${seed})`);
    t.ok(compactSeen > 1000 && fullSeen > 100, `both forms seen (${compactSeen} / ${fullSeen})`);
    t.ok(nullHits > 10, `retries answered from runs (${nullHits})`);
  },
);

t.test('a run that starts above seq 1 does not cover the seqs below it', async (t) => {
  const s = new ClientSessions(4);
  s.record('w', 5, null);
  s.record('w', 6, null);
  t.same(s.check('w', 4), { duplicate: false }, 'seq 4 was never applied');
  t.same(s.check('w', 5), { duplicate: true, known: true, result: null });
  t.same(s.check('w', 2), { duplicate: true, known: false }, 'below the window');
  t.same(s.toImage().clients, [['w', 6, 2]]);
  s.record('w', 4, 'late'); // out of order: spelled out, still exact
  t.same(s.toImage().clients, [['w', 6, [4, 5, 6], ['late', null, null]]]);
  t.same(s.check('w', 4), { duplicate: true, known: true, result: 'late' });
});
