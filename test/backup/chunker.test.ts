/**
 * The two chunk boundary rules (chunker.ts). `gear` is what repositories created before the
 * key rule recorded (no `boundary` in repo.json) and must cut exactly as it always did: a
 * golden digest taken from the code before the key rule existed. `key` decides each boundary
 * from one record's key and size, so a changed value of the same size moves no boundary and
 * an inserted key disturbs only the chunks around it.
 */
import { createHash } from 'node:crypto';
import t from 'tap';
import { Chunker, type ChunkerParams, keyHash } from '../../actors/backup/chunker.js';
import { Random } from '../../lib/random.js';

function chunk(params: ChunkerParams, records: Array<[string, Uint8Array | undefined]>): Buffer[] {
  const out: Buffer[] = [];
  const c = new Chunker(params, (b) => out.push(b));
  for (const [k, v] of records) c.add(k, v);
  c.finish();
  return out;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

t.test('gear (no boundary in repo.json) cuts exactly as before the key rule', async (t) => {
  const r = new Random(99);
  const records: Array<[string, Uint8Array]> = [];
  for (let i = 0; i < 3000; i++) {
    const v = new Uint8Array(r.between(0, 300));
    for (let j = 0; j < v.length; j++) v[j] = r.int(256);
    records.push([`key-${String(i).padStart(6, '0')}`, v]);
  }
  const params: ChunkerParams = { avgSize: 4096, minSize: 1024, maxSize: 16384 };
  for (const p of [params, { ...params, boundary: 'gear' } as ChunkerParams]) {
    const chunks = chunk(p, records);
    const h = createHash('sha256');
    for (const c of chunks) h.update(c);
    t.equal(chunks.length, 109, `${p.boundary ?? 'absent'}: 109 chunks`);
    t.equal(
      h.digest('hex'),
      '152a56c142ef152e4144ee8b62591b80fc8c19fb45776df783cfa9f32f645df9',
      `${p.boundary ?? 'absent'}: the golden bytes of main before the change`,
    );
  }
});

t.test('key rule: boundaries follow keys, not values', async (t) => {
  const r = new Random(7);
  const params: ChunkerParams = { avgSize: 8192, minSize: 2048, maxSize: 65536, boundary: 'key' };
  const records: Array<[string, Uint8Array | undefined]> = [];
  for (let i = 0; i < 6000; i++) {
    const v = new Uint8Array(r.between(50, 400));
    for (let j = 0; j < v.length; j++) v[j] = r.int(256);
    records.push([`user/${String(i * 7).padStart(7, '0')}`, v]);
  }
  const base = chunk(params, records);
  const total = base.reduce((s, c) => s + c.length, 0);
  const mean = total / base.length;
  t.ok(
    mean > params.minSize && mean < params.minSize + 2 * params.avgSize,
    `mean chunk ${mean.toFixed(0)} B (min ${params.minSize}, avg ${params.avgSize})`,
  );
  t.ok(
    base.every((c, i) => c.length >= params.minSize || i === base.length - 1),
    'no chunk below minSize but the last',
  );

  // 30 values rewritten with new bytes of the same size: every boundary stays.
  const changed = records.map(([k, v]) => [k, v] as [string, Uint8Array | undefined]);
  for (let n = 0; n < 30; n++) {
    const i = r.int(changed.length);
    const [k, v] = changed[i] as [string, Uint8Array];
    const w = new Uint8Array(v.length);
    for (let j = 0; j < w.length; j++) w[j] = r.int(256);
    changed[i] = [k, w];
  }
  const after = chunk(params, changed);
  t.same(
    after.map((c) => c.length),
    base.map((c) => c.length),
    'same-size value changes move no boundary',
  );
  const baseIds = new Set(base.map(sha));
  const rewritten = after.filter((c) => !baseIds.has(sha(c))).length;
  t.ok(rewritten <= 30, `${rewritten} of ${after.length} chunks differ (30 values changed)`);

  // One key inserted in the middle: the chunks away from it are the same bytes.
  const inserted = [...records];
  inserted.splice(3000, 0, [`user/${String(2999 * 7 + 3).padStart(7, '0')}`, new Uint8Array(300)]);
  const ins = chunk(params, inserted);
  const fresh = ins.filter((c) => !baseIds.has(sha(c))).length;
  t.ok(fresh <= 3, `an insert rewrites ${fresh} chunk(s) of ${ins.length}`);

  // Negative control: the same changes under the gear rule (whose boundaries depend on value
  // bytes) do move boundaries on this input.
  const gear = { ...params, boundary: 'gear' as const };
  t.not(
    chunk(gear, changed)
      .map((c) => c.length)
      .join(),
    chunk(gear, records)
      .map((c) => c.length)
      .join(),
    'control: gear boundaries move with value bytes',
  );
});

t.test('key rule: a record at least avgSize long always ends its chunk', async (t) => {
  const params: ChunkerParams = { avgSize: 1024, minSize: 256, maxSize: 8192, boundary: 'key' };
  const chunks = chunk(params, [
    ['a', new Uint8Array(100)],
    ['b', new Uint8Array(2000)],
    ['c', new Uint8Array(100)],
  ]);
  t.equal(chunks.length, 2, 'cut after the big record');
  t.equal(chunks[0]?.length, 2 * 5 + 2 + 2 * 4 + 2100, 'a and b together');
  t.equal(keyHash(Buffer.from('abc'), 0, 3), keyHash(Buffer.from('xabc'), 1, 3), 'hash of bytes');
  t.throws(
    () => new Chunker({ ...params, boundary: 'fastcdc' as 'key' }, () => {}),
    { code: 'SYNOD_ERR_BACKUP_INVALID_ARGUMENT' },
    'unknown rule refused',
  );
});
