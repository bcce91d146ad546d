/**
 * A full backup reuses the previous full's chunks for key ranges that did not change
 * (repository.ts `LayoutOptions`): the manifest must be exactly the one a full backup without
 * reuse writes (same chunks, sizes, stream digest, counts), over random puts, inserts and
 * deletes, with either chunk boundary rule, chunks small (hashed in the calling thread) or
 * large (workers, shared memory), and with encryption on or off. A chunk the repository no
 * longer holds (an expire deleted it) is written again, never referenced missing.
 */
import { mkdtemp, rm, unlink } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import t from 'tap';
import type { AgentStatus, BackupEvent } from '../../actors/backup/agent.js';
import type { ChunkerParams } from '../../actors/backup/chunker.js';
import type { Manifest } from '../../actors/backup/manifest.js';
import { anyIn, type ChunkLayout, Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { type MapOp, MapState } from '../../actors/backup/state.js';
import { TrackedState } from '../../actors/backup/tracker.js';
import { keyName, randomValue } from '../../actors/backup/workload.js';
import { agentBackupLine } from '../../cli/commands/backup.js';
import { Random } from '../../lib/random.js';
import { startMapAgent } from '../helpers/backup-agent.js';

const SEED = Number(process.env.SYNOD_TEST_SEED ?? 1414);

const SMALL: ChunkerParams = { avgSize: 2048, minSize: 512, maxSize: 8192, boundary: 'key' };
/** Chunks large enough for the workers (≥ MIN_WORKER_BYTES): kept in shared memory. */
const LARGE: ChunkerParams = { avgSize: 65536, minSize: 16384, maxSize: 262144, boundary: 'key' };

async function tmp(t: { teardown(fn: () => unknown): void }): Promise<string> {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-reuse-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  return dir;
}

/** What must be equal between a full backup with reuse and one without. */
function same(m: Manifest) {
  return {
    chunks: m.chunks,
    bytes: m.bytes,
    records: m.records,
    keyCount: m.keyCount,
    stateDigest: m.stateDigest,
    streamDigest: m.streamDigest,
    digestVersion: m.digestVersion,
    index: m.index,
  };
}

type Tracked = TrackedState<MapOp>;

/** Random changes: overwrites (same or other size), inserts anywhere, deletes. */
function change(r: Random, tracked: Tracked, live: string[], at: { index: number }, n: number) {
  for (let j = 0; j < n; j++) {
    const roll = r.int(10);
    let op: MapOp;
    if (roll < 6 && live.length > 0) {
      const key = live[r.int(live.length)] as string;
      op = { type: 'put', key, value: randomValue(r, 50, 1500) };
    } else if (roll < 8 || live.length === 0) {
      // A new key: before, between or after the existing ones.
      const key = r.int(5) === 0 ? `~${r.int(1e6)}` : keyName(r.int(1e6));
      if (!live.includes(key)) live.push(key);
      op = { type: 'put', key, value: randomValue(r, 50, 1500) };
    } else {
      const k = r.int(live.length);
      const key = live[k] as string;
      live.splice(k, 1);
      op = { type: 'delete', key };
    }
    at.index++;
    tracked.apply(op, { index: at.index, term: 1, time: at.index });
  }
}

async function writeFull(
  repo: Repository,
  tracked: Tracked,
  now: number,
  layout?: { keep: number; prev?: { index: number; layout: ChunkLayout } },
): Promise<{ m: Manifest; laid?: { index: number; layout: ChunkLayout } }> {
  const cap = tracked.captureFull();
  const changed = layout?.prev ? tracked.keysChangedAfter(layout.prev.index) : undefined;
  let laid: { index: number; layout: ChunkLayout } | undefined;
  const m = await repo.writeBackup({
    type: 'full',
    index: cap.index,
    term: cap.term,
    time: cap.time,
    clusterId: 'c1',
    records: cap.records,
    keyCount: cap.keyCount,
    stateDigest: cap.stateDigest,
    now,
    ...(layout
      ? {
          layout: {
            keepBytes: layout.keep,
            ...(layout.prev && changed ? { reuse: { layout: layout.prev.layout, changed } } : {}),
            laidOut: (l: ChunkLayout) => {
              laid = { index: cap.index, layout: l };
            },
          },
        }
      : {}),
  });
  return { m, ...(laid ? { laid } : {}) };
}

for (const [name, chunker] of [
  ['small chunks, key boundaries', SMALL],
  ['small chunks, gear boundaries', { ...SMALL, boundary: 'gear' }],
  ['worker-sized chunks', LARGE],
] as Array<[string, ChunkerParams]>) {
  for (const encrypted of [false, true]) {
    t.test(
      `reuse writes the same full backup: ${name}, ${encrypted ? 'encrypted' : 'plain'} (seed ${SEED})`,
      async (t) => {
        const r = new Random(SEED + (encrypted ? 1 : 0) + chunker.avgSize);
        const repo = await Repository.init(await tmp(t), {
          chunker,
          ...(encrypted ? { key: Buffer.alloc(32, 7) } : {}),
        });
        const keys = chunker === LARGE ? 1500 : 400;
        const tracked = new TrackedState(new MapState()) as Tracked;
        const live: string[] = [];
        const at = { index: 0 };
        for (let i = 0; i < keys; i++) {
          live.push(keyName(i));
          at.index++;
          tracked.apply(
            { type: 'put', key: keyName(i), value: randomValue(r, 200, 1500) },
            { index: at.index, term: 1, time: at.index },
          );
        }
        let prev: { index: number; layout: ChunkLayout } | undefined;
        let reused = 0;
        let total = 0;
        let now = 1_000_000;
        for (let round = 0; round < 12; round++) {
          // None, a few, or many changes (the last rounds: every key's neighbourhood).
          const n = [0, 1, 3, 10, 40][round % 5] as number;
          if (round > 0) change(r, tracked, live, at, round === 11 ? keys : n);
          const withReuse = await writeFull(repo, tracked, now + 1000, {
            keep: 1 << 30,
            ...(prev ? { prev } : {}),
          });
          const without = await writeFull(repo, tracked, now + 2000);
          now += 2000;
          t.same(same(withReuse.m), same(without.m), `round ${round}: the same manifest`);
          const laid = withReuse.laid as { index: number; layout: ChunkLayout };
          t.equal(laid.layout.chunks.length, withReuse.m.chunks.length, 'one layout entry a chunk');
          t.same(
            laid.layout.chunks.map((c) => c.id),
            withReuse.m.chunks.map((c) => c.id),
            'the layout names the manifest chunks',
          );
          t.equal(
            laid.layout.chunks.reduce((s, c) => s + c.records, 0),
            withReuse.m.records,
            'the layout counts every record',
          );
          reused += laid.layout.reusedChunks;
          total += withReuse.m.chunks.length;
          const res = await restore(
            repo,
            { kind: 'backup', id: withReuse.m.id },
            { factory: () => new MapState() },
          );
          t.equal(res.digest, tracked.digestHex, `round ${round}: the restore digest-checks`);
          t.equal(res.keyCount, live.length, `round ${round}: every key restored`);
          prev = laid;
        }
        // Most chunks of the rounds with few changes were reused, not rewritten.
        t.ok(reused > total / 3, `chunks reused: ${reused} of ${total}`);
      },
    );
  }
}

t.test('a reused chunk the repository no longer holds is written again', async (t) => {
  const r = new Random(SEED);
  const repo = await Repository.init(await tmp(t), { chunker: SMALL });
  const tracked = new TrackedState(new MapState()) as Tracked;
  for (let i = 0; i < 300; i++) {
    tracked.apply(
      { type: 'put', key: keyName(i), value: randomValue(r, 200, 1500) },
      { index: i + 1, term: 1, time: i + 1 },
    );
  }
  const first = await writeFull(repo, tracked, 1_000_000, { keep: 1 << 30 });
  const prev = first.laid as { index: number; layout: ChunkLayout };
  // An expire (or an operator) deleted two of its chunks; nothing changed in the state.
  const gone = [prev.layout.chunks[1]?.id, prev.layout.chunks[4]?.id] as string[];
  for (const id of gone) await unlink(repo.chunks.pathOf(id));
  const second = await writeFull(repo, tracked, 1_001_000, { keep: 1 << 30, prev });
  t.same(second.m.chunks, first.m.chunks, 'the same chunks');
  t.equal(
    second.laid?.layout.reusedChunks,
    first.m.chunks.length - 2,
    'every chunk reused but the two deleted ones',
  );
  t.ok(second.m.storedBytes > 0, 'the deleted chunks were stored again');
  for (const id of gone) t.ok(await repo.chunks.get(id), `chunk ${id.slice(0, 8)} is back`);
  const res = await restore(
    repo,
    { kind: 'backup', id: second.m.id },
    { factory: () => new MapState() },
  );
  t.equal(res.digest, tracked.digestHex, 'the backup restores and digest-checks');
});

t.test('a layout from other chunker parameters, or without its bytes, is not reused', async (t) => {
  const r = new Random(SEED + 5);
  const repo = await Repository.init(await tmp(t), { chunker: SMALL });
  const tracked = new TrackedState(new MapState()) as Tracked;
  for (let i = 0; i < 200; i++) {
    tracked.apply(
      { type: 'put', key: keyName(i), value: randomValue(r, 200, 1500) },
      { index: i + 1, term: 1, time: i + 1 },
    );
  }
  const first = await writeFull(repo, tracked, 1_000_000, { keep: 1 << 30 });
  const prev = first.laid as { index: number; layout: ChunkLayout };
  const other = { ...prev, layout: { ...prev.layout, chunker: '{}' } };
  const a = await writeFull(repo, tracked, 1_001_000, { keep: 1 << 30, prev: other });
  t.equal(a.laid?.layout.reusedChunks, 0, 'other chunker parameters: nothing reused');
  const bare = await writeFull(repo, tracked, 1_002_000, { keep: 0 });
  t.ok(
    bare.laid?.layout.chunks.every((c) => c.plain === undefined),
    'keepBytes 0 keeps no bytes',
  );
  const b = await writeFull(repo, tracked, 1_003_000, {
    keep: 1 << 30,
    prev: bare.laid as { index: number; layout: ChunkLayout },
  });
  t.equal(b.laid?.layout.reusedChunks, 0, 'chunks without their bytes: nothing reused');
  t.same(same(a.m), same(first.m), 'same manifests all along');
  t.same(same(b.m), same(first.m));
});

t.test('the tracker names every key changed after an index, or says it cannot', async (t) => {
  const tracked = new TrackedState(new MapState()) as Tracked;
  const put = (key: string, index: number) =>
    tracked.apply(
      { type: 'put', key, value: Buffer.from(String(index)) },
      { index, term: 1, time: index },
    );
  put('b', 1);
  put('a', 2);
  // A capture settles the tracker: an index reuse starts from is always such a point.
  tracked.settle();
  put('c', 3);
  tracked.apply({ type: 'delete', key: 'b' }, { index: 4, term: 1, time: 4 });
  t.same(tracked.keysChangedAfter(2), ['b', 'c'], 'after 2: c put, b deleted (sorted)');
  t.same(tracked.keysChangedAfter(0), ['a', 'b', 'c']);
  t.same(tracked.keysChangedAfter(4), [], 'nothing after the last');
  t.equal(tracked.keysChangedAfter(5), undefined, 'an index not reached yet');
  tracked.forgetUpTo(3);
  t.equal(tracked.keysChangedAfter(2), undefined, 'changes at or before 3 are forgotten');
  t.same(tracked.keysChangedAfter(3), ['b']);
  t.ok(anyIn(['b', 'd'], 'a', 'b') && anyIn(['b', 'd'], 'c', 'e') && !anyIn(['b', 'd'], 'c', 'c'));
  t.notOk(anyIn([], 'a', 'z') || anyIn(['b'], 'c', 'z') || anyIn(['x'], 'a', 'w'));
});

t.test("the agent reuses its last full backup's unchanged chunks", async (t) => {
  const repo = await Repository.init(await tmp(t), { chunker: SMALL, clusterId: 'c1' });
  const { agent } = await startMapAgent(t, repo, {
    seed: 3,
    archive: { maxEntries: 1_000_000, maxBytes: 1 << 30, flushMs: 0 },
  });
  const events: BackupEvent[] = [];
  agent.events$.subscribe((e) => {
    if (e.type === 'backup') events.push(e as unknown as BackupEvent);
  });
  let index = 0;
  const put = (key: string, fill: number) =>
    agent.tell({
      type: 'applied',
      entry: {
        index: ++index,
        term: 1,
        command: {
          clientId: 'c',
          seq: index,
          op: { type: 'put', key, value: Buffer.alloc(500, fill) },
        },
        result: undefined,
      } as never,
    });
  for (let i = 0; i < 1500; i++) put(keyName(i), i);
  const full = async () => {
    const s = (await agent.ask({ type: 'backup', kind: 'full' }, 30_000)) as { id: string };
    const st = (await agent.ask({ type: 'status' })) as AgentStatus;
    const res = await restore(
      repo,
      { kind: 'backup', id: s.id },
      { factory: () => new MapState() },
    );
    t.equal(res.digest, st.stateDigest, `${s.id}: restores to the agent's state digest`);
    return events[events.length - 1] as BackupEvent;
  };
  const first = await full();
  t.equal(first.reusedBytes, 0, 'the first full reuses nothing');
  // A few keys in the middle change; a differential in between changes nothing for the full.
  for (let i = 700; i < 710; i++) put(keyName(i), 1);
  await agent.ask({ type: 'backup', kind: 'diff' }, 30_000);
  const second = await full();
  t.ok(
    (second.reusedBytes ?? 0) > 0.7 * (second.bytes ?? 0),
    `most of the second full reused (${second.reusedBytes} of ${second.bytes} bytes)`,
  );
  const line = JSON.parse(agentBackupLine(second, true, 'T')) as Record<string, unknown>;
  t.same(
    [line.bytes, line.reusedBytes],
    [second.bytes, second.reusedBytes],
    '`synod backup agent --json` prints the bytes and those reused',
  );
  t.match(agentBackupLine(second, false, 'T'), /MiB reused from the last full/);
  // Every key changes: nothing left to reuse, and the backup is still right.
  for (let i = 0; i < 1500; i++) put(keyName(i), 2);
  const third = await full();
  t.equal(third.reusedBytes, 0, 'every key changed: nothing reused');
  const fourth = await full();
  t.equal(fourth.reusedBytes, fourth.bytes, 'nothing changed: every chunk reused');
});

t.test(
  'after fulls that reuse nothing, the agent keeps new chunks only every fourth full',
  async (t) => {
    const repo = await Repository.init(await tmp(t), { chunker: SMALL, clusterId: 'c1' });
    const { agent } = await startMapAgent(t, repo, {
      seed: 4,
      archive: { maxEntries: 1_000_000, maxBytes: 1 << 30, flushMs: 0 },
    });
    const events: BackupEvent[] = [];
    agent.events$.subscribe((e) => {
      if (e.type === 'backup') events.push(e as unknown as BackupEvent);
    });
    let index = 0;
    const all = (fill: number) => {
      for (let i = 0; i < 600; i++)
        agent.tell({
          type: 'applied',
          entry: {
            index: ++index,
            term: 1,
            command: {
              clientId: 'c',
              seq: index,
              op: { type: 'put', key: keyName(i), value: Buffer.alloc(300, fill) },
            },
            result: undefined,
          } as never,
        });
    };
    const full = async () => {
      await agent.ask({ type: 'backup', kind: 'full' }, 30_000);
      const e = events[events.length - 1] as BackupEvent;
      return e.reusedBytes === e.bytes ? 'all' : e.reusedBytes;
    };
    all(1);
    const got = [await full()];
    all(2);
    got.push(await full()); // every key changed: a miss
    all(3);
    got.push(await full()); // a miss again; this one kept no new chunk
    got.push(await full(), await full()); // nothing changed, but nothing kept to reuse
    got.push(await full()); // the fourth since the first miss keeps its chunks
    got.push(await full()); // and the next reuses them all
    t.same(got, [0, 0, 0, 0, 0, 0, 'all'], 'reused per full');
    const st = (await agent.ask({ type: 'status' })) as AgentStatus;
    const last = (events[events.length - 1] as BackupEvent).id;
    const res = await restore(
      repo,
      { kind: 'backup', id: last },
      { factory: () => new MapState() },
    );
    t.equal(res.digest, st.stateDigest, 'the last full restores to the agent state');
  },
);
