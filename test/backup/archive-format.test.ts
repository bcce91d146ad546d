/**
 * The log archive's segment format, version 2: a record holds the command as the replicated
 * log encodes it (the bytes the agent's learner received), not a second msgpack encoding of
 * it. Version 1 segments (written before) still read, restore and verify, alone and next to
 * version 2 segments in one repository.
 *
 * test/backup/fixtures/digest-v1/{plain,encrypted} hold version 1 segments 1..360 (see
 * digest-compat.test.ts for how they were written: RepoDriver seed 2026, WORKLOAD below).
 */
import { createHash } from 'node:crypto';
import { cp, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pack } from 'msgpackr';
import t from 'tap';
import {
  ARCHIVE_FORMAT,
  decodeArchivedCommand,
  encodeArchivedCommand,
} from '../../actors/backup/archive.js';
import { RepoDriver } from '../../actors/backup/driver.js';
import { Repository } from '../../actors/backup/repository.js';
import { restore } from '../../actors/backup/restore.js';
import { type MapOp, MapState } from '../../actors/backup/state.js';
import { verify } from '../../actors/backup/verify.js';
import { encodeCommand } from '../../actors/raft/raft-node.js';
import { encodeValue } from '../../lib/codec.js';
import type { Command } from '../../lib/replicated-log.js';
import { startMapAgent } from '../helpers/backup-agent.js';

const FIXTURES = path.join(path.dirname(fileURLToPath(import.meta.url)), 'fixtures', 'digest-v1');
const WORKLOAD = { keySpace: 120, valueMin: 0, valueMax: 700, pDelete: 0.15, pBatch: 0.1 };
const KEY = Buffer.alloc(32, 7);
const factory = () => new MapState();

const base = await mkdtemp(path.join(os.tmpdir(), 'synod-archive-format-'));
t.teardown(() => rm(base, { recursive: true, force: true }));
let dirs = 0;

async function fixture(name: 'plain' | 'encrypted'): Promise<{ dir: string; repo: Repository }> {
  const dir = path.join(base, `${name}-${++dirs}`);
  await cp(path.join(FIXTURES, name), dir, { recursive: true });
  return { dir, repo: await Repository.open(dir, name === 'encrypted' ? { key: KEY } : {}) };
}

/** The format version byte of every archive segment, by name. */
async function segmentVersions(dir: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  const root = path.join(dir, 'archive');
  for (const f of (await readdir(root)).sort()) {
    out[f] = (await readFile(path.join(root, f)))[4] as number;
  }
  return out;
}

for (const name of ['plain', 'encrypted'] as const) {
  t.test(`${name}: version 1 segments and current-version segments after them`, async (t) => {
    const { dir, repo } = await fixture(name);
    t.same(
      Object.values(await segmentVersions(dir)),
      [1, 1, 1, 1],
      'the fixture holds version 1 segments only',
    );
    // The same seeded workload, continued past the fixture's archive by the current code.
    const d = new RepoDriver(repo, 'fixture', 2026, WORKLOAD);
    d.apply(360);
    d.buffer = []; // 1..360 are archived already (version 1)
    d.apply(60);
    await d.flush();
    const versions = await segmentVersions(dir);
    t.equal(versions['0000000000000361-0000000000000420.seg'], ARCHIVE_FORMAT, 'new segment');
    t.equal(ARCHIVE_FORMAT, 3);

    for (const index of [321, 340, 360, 361, 390, 420]) {
      const r = await restore(repo, { kind: 'index', index }, { factory });
      const want = d.digests.get(index) as { digest: string; count: number };
      t.same(
        { index: r.index, digest: r.digest, count: r.keyCount },
        { index, digest: want.digest, count: want.count },
        `restore to ${index} replays ${index <= 360 ? 'version 1' : 'both versions'}`,
      );
    }
    const report = await verify(repo);
    t.ok(report.ok, 'verify reads both versions');
    t.same(report.problems, [], 'nothing damaged');

    // Entries read from a version 1 segment decode to the command the workload applied, and
    // a segment rewritten from them is written in the current format.
    const segs = await repo.archive.list();
    const old = await repo.archive.read(segs[0] as (typeof segs)[number]);
    t.equal(old[0]?.format, 1, 'entries read from a version 1 segment say so');
    const cmd = decodeArchivedCommand<MapOp>(old[0] as (typeof old)[number]);
    t.ok(cmd && typeof cmd.clientId === 'string', 'a version 1 record decodes to a command');
    const again = path.join(base, `rewrite-${++dirs}`);
    const r2 = await Repository.init(again, name === 'encrypted' ? { key: KEY } : {});
    await r2.withLock(() => r2.archive.write(old));
    const back = await r2.archive.read((await r2.archive.list())[0] as (typeof segs)[number]);
    t.equal(back[0]?.format, ARCHIVE_FORMAT, 'rewritten in the current format');
    t.equal(old[0]?.timing, 'unknown', 'a version 1 record does not say how its time was taken');
    t.equal(back[0]?.timing, 'unknown', 'and rewritten, it still does not');
    t.same(
      back.map((e) => decodeArchivedCommand(e)),
      old.map((e) => decodeArchivedCommand(e)),
      'and every command decodes the same',
    );
  });
}

t.test('a version 2 record is the log encoding of the command', async (t) => {
  const cmd: Command<MapOp> = {
    clientId: 'c1',
    seq: 7,
    op: { type: 'put', key: 'k', value: Buffer.from('hello') },
  };
  const bytes = encodeArchivedCommand(cmd);
  t.same(Buffer.from(bytes), Buffer.from(encodeCommand(cmd as Command)), 'encodeCommand bytes');
  t.same(
    decodeArchivedCommand({ index: 1, term: 1, time: 0, data: bytes }),
    cmd,
    'decodes to the command',
  );
  // Raft logs written before the array form hold the map {c, s, o}: those bytes decode too.
  const legacy = encodeValue({ c: 'c1', s: 7, o: cmd.op });
  t.same(decodeArchivedCommand({ index: 1, term: 1, time: 0, data: legacy }), cmd, '{c, s, o}');
  // Version 1: msgpack map {clientId, seq, op}.
  t.same(
    decodeArchivedCommand({ index: 1, term: 1, time: 0, data: pack(cmd), format: 1 }),
    cmd,
    'version 1',
  );
  t.equal(
    decodeArchivedCommand({ index: 1, term: 1, time: 0, data: new Uint8Array(0) }),
    undefined,
  );
  for (const bad of [Buffer.from([0xc1]), encodeValue(42), encodeValue(['c1'])]) {
    t.throws(
      () => decodeArchivedCommand({ index: 9, term: 1, time: 0, data: bad }),
      { code: 'SYNOD_ERR_BACKUP_ARCHIVE_CORRUPT', message: /archived entry 9 .*command/ },
      `bytes that are not a command (${bad.toString('hex')}) are a clear error`,
    );
  }
});

t.test('restore refuses an archived record that is not a command', async (t) => {
  const dir = path.join(base, `bad-${++dirs}`);
  const repo = await Repository.init(dir, { clusterId: 'x' });
  const d = new RepoDriver(repo, 'x', 5, WORKLOAD);
  d.apply(20);
  await d.backup('full');
  await d.flush();
  await repo.withLock(() =>
    repo.archive.write([{ index: 21, term: 1, time: 0, data: Buffer.from([0x92, 0x01]) }]),
  );
  await t.rejects(restore(repo, { kind: 'index', index: 21 }, { factory }), {
    code: 'SYNOD_ERR_BACKUP_ARCHIVE_CORRUPT',
    message: /archived entry 21/,
  });
  const r = await restore(repo, { kind: 'index', index: 20 }, { factory });
  t.equal(r.index, 20, 'up to the entry before it restores');
  const report = await verify(repo);
  t.notOk(report.ok, 'verify reports it too (its frame and checksum are sound)');
  t.match(
    report.problems.filter((p) => p.kind === 'archive-record-corrupt'),
    [{ detail: /archived entry 21 .*index 21 or later/ }],
    'naming the entry',
  );
});

t.test('a segment of a newer format version is named, not misread', async (t) => {
  t.equal(ARCHIVE_FORMAT, 3);
  const dir = path.join(base, `newer-${++dirs}`);
  const repo = await Repository.init(dir, { clusterId: 'x' });
  const d = new RepoDriver(repo, 'x', 6, WORKLOAD);
  d.apply(10);
  await d.flush();
  const [seg] = await repo.archive.list();
  const file = (seg as { file: string }).file;
  const raw = Buffer.from(await readFile(file));
  raw[4] = ARCHIVE_FORMAT + 1;
  // A well-formed file of that version: its checksum matches.
  createHash('sha256')
    .update(raw.subarray(0, raw.length - 32))
    .digest()
    .copy(raw, raw.length - 32);
  await writeFile(file, raw);
  await t.rejects(
    repo.archive.read(seg as { file: string; name: string; first: number; last: number }),
    {
      code: 'SYNOD_ERR_BACKUP_ARCHIVE_CORRUPT',
      message: new RegExp(`format version ${ARCHIVE_FORMAT + 1}`),
    },
  );
  const report = await verify(repo);
  t.notOk(report.ok, 'verify reports it');
});

t.test('the agent archives the bytes the log holds', async (t) => {
  const dir = path.join(base, `agent-${++dirs}`);
  const repo = await Repository.init(dir, { clusterId: 'c1' });
  const { agent } = await startMapAgent(t, repo, { seed: 1, archive: { flushMs: 0 } });
  const c1: Command<MapOp> = {
    clientId: 'a',
    seq: 1,
    op: { type: 'put', key: 'k1', value: Buffer.from('v1') },
  };
  const c2: Command<MapOp> = {
    clientId: 'a',
    seq: 2,
    op: { type: 'put', key: 'k2', value: Buffer.from('v2') },
  };
  // Entry 1 comes with its log bytes, in the legacy {c, s, o} form (a log from before the
  // array form): the archive keeps those very bytes. Entry 2 comes without (a source that has
  // none, e.g. Multi-Paxos): the agent encodes it.
  const logBytes = encodeValue({ c: 'a', s: 1, o: c1.op });
  agent.tell({
    type: 'applied',
    entry: { index: 1, term: 1, command: c1, result: 1, data: logBytes },
  });
  agent.tell({ type: 'applied', entry: { index: 2, term: 1, command: c2, result: 1 } });
  t.equal(await agent.ask({ type: 'flush' }), 2, 'archived to 2');
  const [seg] = await repo.archive.list();
  const entries = await repo.archive.read(
    seg as { file: string; name: string; first: number; last: number },
  );
  t.same(Buffer.from(entries[0]?.data as Uint8Array), Buffer.from(logBytes), 'the log bytes');
  t.same(
    Buffer.from(entries[1]?.data as Uint8Array),
    Buffer.from(encodeCommand(c2 as Command)),
    'encodeCommand bytes',
  );
  const r = await restore(repo, { kind: 'index', index: 2 }, { factory });
  t.same(
    [...r.state.inner.entries()]
      .filter(([k]) => !k.startsWith('\u0000'))
      .map(([k, v]) => [k, Buffer.from(v).toString()]),
    [
      ['k1', 'v1'],
      ['k2', 'v2'],
    ],
    'the restore replays both',
  );
});
