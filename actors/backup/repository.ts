/**
 * The backup repository: a directory holding
 *
 *     repo.json               format, chunker and compression parameters, cluster id,
 *                             encryption salt and key check
 *     chunks/xx/<address>     content-addressed chunks (chunk-store.ts)
 *     backups/<id>.manifest   one manifest per complete backup (manifest.ts)
 *     archive/<a>-<b>.seg     the log archive (archive.ts)
 *     expire.journal          present only while an expire is in progress (retention.ts)
 *     LOCK                    held by the process writing (backup, archive, expire)
 *
 * Writes follow one rule: data first, made durable, then the small record that makes it
 * visible (a manifest, a segment rename), atomically. A crash at any point leaves every
 * earlier backup intact and no partial backup listed; leftovers (orphan chunks, .tmp files)
 * are swept by the next expire.
 */
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { acquireDirLock, type DirLock } from '../../lib/storage/fs-util.js';
import { LogArchive } from './archive.js';
import { chunkPool } from './chunk-pool.js';
import {
  type ChunkRef,
  ChunkStore,
  type CompressionParams,
  defaultCompression,
  validateCompression,
} from './chunk-store.js';
import { Chunker, type ChunkerParams, DEFAULT_CHUNKER, validateChunkerParams } from './chunker.js';
import { checkKey, deriveKeys, keyCheck, type RepoKeys } from './crypto.js';
import { DIGEST_VERSION } from './digest.js';
import { BackupError, isBackupError } from './errors.js';
import { atomicWrite, nodeRepoFs, type RepoFs } from './fs.js';
import {
  type BackupType,
  decodeManifest,
  encodeManifest,
  MANIFEST_ID_RE,
  type Manifest,
  manifestId,
} from './manifest.js';
import type { ProgressFn } from './progress.js';
import { resumeExpire } from './retention.js';
import type { ClusterProtocol } from './sessions.js';

export interface RepoConfig {
  readonly format: 1;
  readonly createdAt: number;
  /** The cluster this repository backs up (set by the first backup when not given). */
  readonly clusterId: string | null;
  /** The state machine whose state the backups hold (state-kind.ts); absent = 'map'. */
  readonly state?: 'map' | 'kv';
  /**
   * The consensus protocol of the cluster backed up (absent = raft): whose client session rule
   * the state carries, and which data directory a restore writes.
   */
  readonly protocol?: ClusterProtocol;
  readonly chunker: ChunkerParams;
  readonly compression: CompressionParams;
  readonly encryption: null | {
    readonly kdf: 'hkdf-sha256';
    readonly salt: string;
    readonly keyCheck: string;
  };
}

export interface InitOptions {
  clusterId?: string;
  /** The state machine backed up (default 'map'). */
  state?: 'map' | 'kv';
  /** The cluster's protocol (default raft). */
  protocol?: ClusterProtocol;
  chunker?: Partial<ChunkerParams>;
  compression?: Partial<CompressionParams>;
  /** A 32-byte master key: the repository is encrypted with keys derived from it. */
  key?: Buffer;
  fs?: RepoFs;
  /** Wall-clock ms for createdAt. */
  now?: number;
}

export interface OpenOptions {
  key?: Buffer;
  fs?: RepoFs;
}

export interface BackupInput {
  readonly type: BackupType;
  /** For diff/incr: the backup it is relative to (a diff's must be a full). */
  readonly parent?: Manifest;
  readonly index: number;
  readonly term: number;
  /** Commit time of the entry at `index`. */
  readonly time: number;
  readonly clusterId: string;
  /** Records in ascending key order (value undefined = delete; fulls have no deletes). */
  readonly records: Iterable<readonly [string, Uint8Array | undefined]>;
  readonly keyCount: number;
  readonly stateDigest: string;
  /** Wall-clock ms for the manifest's createdAt and id. */
  readonly now: number;
  readonly progress?: ProgressFn;
  /** Plain bytes expected, for progress. */
  readonly totalBytes?: number;
  /** Full backups: reuse chunks of an earlier full, and lay this one out (see there). */
  readonly layout?: LayoutOptions;
}

/**
 * One chunk of a full backup as its writer cut it: what a later full backup may reuse
 * (`ChunkReuse`). Kept in memory by the writer's caller (the agent), never stored.
 */
export interface LaidChunk {
  readonly id: string;
  /** Plain bytes. */
  readonly size: number;
  readonly firstKey: string;
  readonly lastKey: string;
  readonly records: number;
  /**
   * Ended by the chunker's rule (a boundary, or the size cap) rather than by the end of the
   * record stream: only such a chunk can be followed by other records unchanged.
   */
  readonly cut: boolean;
  /**
   * Its plain bytes (shared memory, never written to), when the writer kept them
   * (`LayoutOptions.keepBytes`): a reuse feeds them to the stream digest (digest.ts, version
   * 2, the SHA-256 of the whole record stream), so only a chunk with its bytes can be reused.
   */
  readonly plain?: Buffer;
}

/** The chunks of one full backup, in order, and the chunker parameters that cut them. */
export interface ChunkLayout {
  readonly chunker: string;
  readonly chunks: readonly LaidChunk[];
  /** Chunks and plain bytes of the backup that were reused from the layout before it. */
  readonly reusedChunks: number;
  readonly reusedBytes: number;
}

/**
 * An earlier full backup's layout, with every key put or deleted since that backup was
 * captured (ascending, as `Array.prototype.sort` orders strings; a superset is fine).
 */
export interface ChunkReuse {
  readonly layout: ChunkLayout;
  readonly changed: readonly string[];
}

/**
 * Full backups: lay the chunks out for the next full backup (`laidOut`, called once the
 * manifest is written), and reuse what `reuse` allows. A chunk of the earlier backup is reused
 * (no serializing, hashing, compressing or writing) only when all of these hold:
 *
 * - the chunker is at a chunk boundary and the next record's key is that chunk's first key;
 * - no key in [firstKey, lastKey] was put or deleted since (so the next `records` records are
 *   exactly that chunk's: same keys, same values; their last key is checked too);
 * - that chunk ended by the chunker's rule (`cut`), or the record stream ends with it;
 * - its plain bytes were kept, and the repository's listing (taken under the lock) has it.
 *
 * The chunker decides where a chunk ends from the records since the chunk began, without
 * looking ahead (chunker.ts), so from the same record with the same records it would cut
 * exactly that chunk: the manifest is byte for byte the one a backup without reuse writes
 * (test/backup/chunk-reuse.test.ts checks that over random changes). Anywhere else the
 * records are chunked as usual, and since boundaries are content-defined the chunker falls
 * back in step with the earlier layout at the next unchanged boundary.
 */
export interface LayoutOptions {
  /**
   * Plain bytes of this backup's chunks to keep in the layout, at most (0: none), reused
   * chunks (whose bytes are kept already) first come, first served with the new ones.
   */
  readonly keepBytes: number;
  /** False: keep only the reused chunks' bytes, copy no new chunk (default true). */
  readonly keepNew?: boolean;
  readonly reuse?: ChunkReuse;
  readonly laidOut: (layout: ChunkLayout) => void;
}

export interface ScannedManifest {
  readonly name: string;
  readonly manifest?: Manifest;
  readonly mac?: string;
  readonly error?: BackupError;
}

const JOURNAL = 'expire.journal';
/**
 * Chunks in flight at once in a backup (cut, and not yet written and hashed into the stream
 * digest). Each holds a slab of the chunker's largest chunk (4 MiB by default) while it is;
 * enough of them keep both cores busy while some wait for the file system (session 11).
 */
const WRITE_WINDOW = 8;

export class Repository {
  readonly chunks: ChunkStore;
  readonly archive: LogArchive;
  private lockHandle: DirLock | undefined;
  private lockDepth = 0;

  private constructor(
    readonly dir: string,
    readonly config: RepoConfig,
    readonly keys: RepoKeys,
    readonly fs: RepoFs,
  ) {
    this.chunks = new ChunkStore(fs, path.join(dir, 'chunks'), keys, config.compression);
    this.archive = new LogArchive(fs, path.join(dir, 'archive'), keys);
  }

  get backupsDir(): string {
    return path.join(this.dir, 'backups');
  }

  get journalFile(): string {
    return path.join(this.dir, JOURNAL);
  }

  /** Creates a repository in `dir` (which may exist but must not hold one). */
  static async init(dir: string, opts: InitOptions = {}): Promise<Repository> {
    const rfs = opts.fs ?? nodeRepoFs;
    if ((await rfs.size(path.join(dir, 'repo.json'))) !== undefined) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        `${dir} already holds a repository`,
        { dir },
      );
    }
    const chunker = { ...DEFAULT_CHUNKER, ...opts.chunker };
    validateChunkerParams(chunker);
    const dflt = defaultCompression();
    const compression: CompressionParams = {
      ...dflt,
      ...(opts.compression?.algo !== undefined &&
      opts.compression.algo !== dflt.algo &&
      opts.compression.level === undefined
        ? {
            level:
              opts.compression.algo === 'deflate' || opts.compression.algo === 'brotli' ? 1 : 0,
          }
        : {}),
      ...opts.compression,
    };
    validateCompression(compression);
    const salt = randomBytes(16).toString('hex');
    const keys = deriveKeys(opts.key, salt);
    const config: RepoConfig = {
      format: 1,
      createdAt: opts.now ?? 0,
      clusterId: opts.clusterId ?? null,
      ...(opts.state && opts.state !== 'map' ? { state: opts.state } : {}),
      ...(opts.protocol === 'paxos' ? { protocol: opts.protocol } : {}),
      chunker,
      compression,
      encryption: opts.key ? { kdf: 'hkdf-sha256', salt, keyCheck: keyCheck(keys) } : null,
    };
    await rfs.mkdirp(dir);
    for (const d of ['chunks', 'backups', 'archive']) await rfs.mkdirp(path.join(dir, d));
    await rfs.fsyncDir(dir);
    await atomicWrite(
      rfs,
      path.join(dir, 'repo.json'),
      Buffer.from(`${JSON.stringify(config, null, 2)}\n`),
    );
    return new Repository(dir, config, keys, rfs);
  }

  /**
   * Opens the repository in `dir`, or creates a KV one there when none exists yet (what a live
   * backup agent does on its first run). `created` says which happened.
   */
  static async openOrInitKv(
    dir: string,
    opts: { key?: Buffer; clusterId: string; now: number; protocol?: ClusterProtocol },
  ): Promise<{ repo: Repository; created: boolean }> {
    try {
      return {
        repo: await Repository.open(dir, opts.key ? { key: opts.key } : {}),
        created: false,
      };
    } catch (err) {
      if (!isBackupError(err, 'SYNOD_ERR_BACKUP_REPO_NOT_FOUND')) throw err;
      const repo = await Repository.init(dir, {
        state: 'kv',
        ...(opts.protocol ? { protocol: opts.protocol } : {}),
        clusterId: opts.clusterId,
        ...(opts.key ? { key: opts.key } : {}),
        now: opts.now,
      });
      return { repo, created: true };
    }
  }

  static async open(dir: string, opts: OpenOptions = {}): Promise<Repository> {
    const rfs = opts.fs ?? nodeRepoFs;
    let text: Buffer;
    try {
      text = await rfs.readFile(path.join(dir, 'repo.json'));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_REPO_NOT_FOUND',
          `no backup repository in ${dir} (no repo.json)`,
          { dir },
        );
      }
      throw err;
    }
    let config: RepoConfig;
    try {
      config = JSON.parse(text.toString('utf8')) as RepoConfig;
    } catch {
      throw new BackupError('SYNOD_ERR_BACKUP_REPO_FORMAT', `${dir}/repo.json is not valid JSON`, {
        dir,
      });
    }
    if (
      config.format !== 1 ||
      !config.chunker ||
      !config.compression ||
      (config.state !== undefined && config.state !== 'map' && config.state !== 'kv') ||
      (config.protocol !== undefined && config.protocol !== 'raft' && config.protocol !== 'paxos')
    ) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_REPO_FORMAT',
        `${dir}/repo.json: unknown format ${String(config.format)}`,
        { dir },
      );
    }
    try {
      validateChunkerParams(config.chunker);
      validateCompression(config.compression);
    } catch (err) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_REPO_FORMAT',
        `${dir}/repo.json: ${(err as Error).message}`,
        { dir },
      );
    }
    let keys: RepoKeys;
    if (config.encryption) {
      if (!opts.key) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_KEY_REQUIRED',
          `repository ${dir} is encrypted: give the key with --key-file FILE or $SYNOD_BACKUP_KEY`,
          { dir },
        );
      }
      keys = deriveKeys(opts.key, config.encryption.salt);
      if (!checkKey(keys, config.encryption.keyCheck)) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_WRONG_KEY',
          `the key given does not open repository ${dir}`,
          { dir },
        );
      }
    } else {
      if (opts.key) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_WRONG_KEY',
          `repository ${dir} is not encrypted, but a key was given`,
          { dir },
        );
      }
      keys = deriveKeys(undefined, '');
    }
    return new Repository(dir, config, keys, rfs);
  }

  /** Runs `fn` holding the repository lock (re-entrant within this object). */
  async withLock<T>(fn: () => Promise<T>): Promise<T> {
    if (this.lockDepth === 0) {
      try {
        this.lockHandle = await acquireDirLock(this.dir);
      } catch (err) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_LOCKED',
          `repository ${this.dir} is busy: ${(err as Error).message}`,
          { dir: this.dir },
          err,
        );
      }
    }
    this.lockDepth++;
    try {
      if (this.lockDepth === 1) await this.recover();
      return await fn();
    } finally {
      this.lockDepth--;
      if (this.lockDepth === 0) {
        const h = this.lockHandle;
        this.lockHandle = undefined;
        await h?.release();
      }
    }
  }

  /** Run when the lock is first taken: rolls an interrupted expire forward. */
  private async recover(): Promise<void> {
    if ((await this.fs.size(this.journalFile)) !== undefined) await resumeExpire(this);
  }

  /** Backup ids named in a pending expire journal (listed as gone). */
  async pendingExpiry(): Promise<Set<string>> {
    try {
      const j = JSON.parse((await this.fs.readFile(this.journalFile)).toString('utf8')) as {
        backups?: string[];
      };
      return new Set(j.backups ?? []);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return new Set();
      // A journal is written atomically; an unreadable one is damage, and expiring is the
      // only thing it could mean: treat nothing as pending and let verify report it.
      return new Set();
    }
  }

  /** Every manifest file, decoded or with the error that prevents it. */
  async scan(): Promise<ScannedManifest[]> {
    const pending = await this.pendingExpiry();
    const out: ScannedManifest[] = [];
    for (const f of (await this.fs.readdir(this.backupsDir)).sort()) {
      if (!f.endsWith('.manifest')) continue;
      const name = f.slice(0, -'.manifest'.length);
      if (!MANIFEST_ID_RE.test(name) || pending.has(name)) continue;
      try {
        const bytes = await this.fs.readFile(path.join(this.backupsDir, f));
        const { manifest, mac } = decodeManifest(this.keys, bytes, name);
        out.push({ name, manifest, mac });
      } catch (err) {
        if (isBackupError(err)) out.push({ name, error: err });
        else throw err;
      }
    }
    return out.sort((a, b) => seqOf(a) - seqOf(b));
  }

  /** Complete, readable backups in creation order. */
  async list(): Promise<Manifest[]> {
    return (await this.scan()).flatMap((s) => (s.manifest ? [s.manifest] : []));
  }

  async get(id: string): Promise<Manifest> {
    const s = (await this.scan()).find((x) => x.name === id);
    if (!s) throw new BackupError('SYNOD_ERR_BACKUP_NOT_FOUND', `no backup ${id}`, { backup: id });
    if (s.error) throw s.error;
    return s.manifest as Manifest;
  }

  /**
   * The chain full → ... → `id`, checked: every parent present and readable, its MAC the one
   * recorded, types and indices consistent.
   */
  async chain(id: string, scanned?: ScannedManifest[]): Promise<Manifest[]> {
    const all = scanned ?? (await this.scan());
    const byName = new Map(all.map((s) => [s.name, s]));
    const out: Manifest[] = [];
    let cur = byName.get(id);
    if (!cur)
      throw new BackupError('SYNOD_ERR_BACKUP_NOT_FOUND', `no backup ${id}`, { backup: id });
    if (cur.error) throw cur.error;
    for (;;) {
      const m = cur.manifest as Manifest;
      out.unshift(m);
      if (m.type === 'full') break;
      const parentName = m.parent as string;
      const p = byName.get(parentName);
      const broken = (why: string): never => {
        throw new BackupError('SYNOD_ERR_BACKUP_CHAIN_BROKEN', `backup ${id}: ${why}`, {
          backup: id,
          parent: parentName,
        });
      };
      if (!p) broken(`parent ${parentName} of ${m.id} is missing`);
      if (p?.error) broken(`parent ${parentName} of ${m.id} is damaged (${p.error.message})`);
      const pm = p?.manifest as Manifest;
      if (p?.mac !== m.parentMac)
        broken(`parent ${parentName} of ${m.id} is not the one it was taken against (MAC differs)`);
      if (pm.index > m.index) broken(`parent ${parentName} is newer than ${m.id}`);
      if (m.type === 'diff' && pm.type !== 'full')
        broken(`differential ${m.id} has a non-full parent`);
      if (pm.full !== m.full) broken(`${m.id} and its parent disagree on the full backup`);
      if (out.length > 100_000) broken('parent cycle');
      cur = p as ScannedManifest;
    }
    return out;
  }

  /** Writes a backup: chunks first (durable), then its manifest atomically. */
  async writeBackup(input: BackupInput): Promise<Manifest> {
    return this.withLock(async () => {
      await this.checkCluster(input.clusterId);
      let parent: Manifest | null = null;
      let parentMac: string | null = null;
      let full: string | null = null;
      const scanned = await this.scan();
      if (input.type !== 'full') {
        if (!input.parent) {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_NO_FULL',
            `a ${input.type} backup needs a parent backup`,
          );
        }
        const p = scanned.find((s) => s.name === input.parent?.id);
        if (!p?.manifest) {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_CHAIN_BROKEN',
            `parent ${input.parent.id} is not in the repository`,
            {
              parent: input.parent.id,
            },
          );
        }
        await this.chain(p.name, scanned);
        if (input.type === 'diff' && p.manifest.type !== 'full') {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
            'a differential backup must have a full parent',
          );
        }
        if (p.manifest.index > input.index) {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_STALE_INDEX',
            `parent ${p.name} is at index ${p.manifest.index} > ${input.index}`,
          );
        }
        parent = p.manifest;
        parentMac = p.mac ?? null;
        full = p.manifest.full;
      }
      let refs: Awaited<ReturnType<Repository['writeChunks']>>;
      try {
        // A full backup writes mostly chunks the repository does not hold: one listing
        // instead of a stat per chunk (chunk-store.ts `listAll`; we hold the lock).
        if (input.type === 'full')
          await this.chunks.listAll(Chunker.bufferSize(this.config.chunker));
        refs = await this.writeChunks(input);
        await this.chunks.sync();
      } catch (err) {
        await this.chunks.abandon();
        throw err;
      } finally {
        this.chunks.forgetListing();
      }
      const seq = scanned.reduce((mx, s) => Math.max(mx, seqOf(s)), 0) + 1;
      const id = manifestId(input.type, seq, input.now);
      let records = 0;
      let deletes = 0;
      let bytes = 0;
      let stored = 0;
      for (const r of refs.refs) {
        bytes += r.size;
        stored += r.stored;
      }
      records = refs.records;
      deletes = refs.deletes;
      const manifest: Manifest = {
        format: 1,
        id,
        seq,
        type: input.type,
        parent: parent ? parent.id : null,
        parentMac,
        full: full ?? id,
        index: input.index,
        term: input.term,
        time: input.time,
        createdAt: input.now,
        clusterId: input.clusterId,
        chunks: refs.refs.map((r) => ({ id: r.id, size: r.size })),
        bytes,
        storedBytes: stored,
        records,
        deletes,
        keyCount: input.keyCount,
        stateDigest: input.stateDigest,
        digestVersion: DIGEST_VERSION,
        ...(refs.streamDigest !== undefined ? { streamDigest: refs.streamDigest } : {}),
      };
      await this.fs.mkdirp(this.backupsDir);
      await atomicWrite(
        this.fs,
        path.join(this.backupsDir, `${id}.manifest`),
        encodeManifest(this.keys, manifest).bytes,
      );
      if (refs.layout) input.layout?.laidOut(refs.layout);
      return manifest;
    });
  }

  /** Bytes of a manifest file as stored. */
  async manifestSize(id: string): Promise<number> {
    return (await this.fs.size(path.join(this.backupsDir, `${id}.manifest`))) ?? 0;
  }

  /**
   * Makes sure the repository backs up a `protocol` cluster: a repository that holds nothing
   * yet (no backup, no archived entry) takes it; one that holds another protocol's state is
   * refused (its session table and data directories are of that protocol).
   */
  async adoptProtocol(protocol: ClusterProtocol): Promise<void> {
    const mine = this.config.protocol ?? 'raft';
    if (mine === protocol) return;
    await this.withLock(async () => {
      const empty = (await this.scan()).length === 0 && (await this.archive.list()).length === 0;
      if (!empty) {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_CLUSTER_MISMATCH',
          `repository ${this.dir} holds backups of a ${mine === 'paxos' ? 'Multi-Paxos' : 'Raft'} cluster; this cluster runs ${protocol === 'paxos' ? 'Multi-Paxos' : 'Raft'}: use another --repo`,
          { expected: mine, got: protocol },
        );
      }
      const next: RepoConfig = { ...this.config, protocol };
      await atomicWrite(
        this.fs,
        path.join(this.dir, 'repo.json'),
        Buffer.from(`${JSON.stringify(next, null, 2)}\n`),
      );
      (this as { config: RepoConfig }).config = next;
    });
  }

  private async checkCluster(clusterId: string): Promise<void> {
    if (this.config.clusterId === null) {
      const next: RepoConfig = { ...this.config, clusterId };
      await atomicWrite(
        this.fs,
        path.join(this.dir, 'repo.json'),
        Buffer.from(`${JSON.stringify(next, null, 2)}\n`),
      );
      (this as { config: RepoConfig }).config = next;
    } else if (this.config.clusterId !== clusterId) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_CLUSTER_MISMATCH',
        `repository ${this.dir} belongs to cluster ${this.config.clusterId}, not ${clusterId}`,
        { expected: this.config.clusterId, got: clusterId },
      );
    }
  }

  private async writeChunks(input: BackupInput): Promise<{
    refs: ChunkRef[];
    records: number;
    deletes: number;
    streamDigest?: string;
    layout?: ChunkLayout;
  }> {
    const pending: Promise<ChunkRef>[] = [];
    /** Per chunk: settles once no thread reads its memory any more (never rejects). */
    const released: Promise<unknown>[] = [];
    // A full backup's chunks, in order, are its record stream (digest.ts, version 2): fed to
    // one hash as they are cut, on a worker (chunk-pool.ts `streamHash`) while this thread
    // serializes the next ones. The chunker writes chunks straight into shared slabs
    // (`ChunkSlabs`), so the stream's worker and the one hashing and compressing a chunk read
    // the same bytes, and a slab is reused only once both are done with it.
    const full = input.type === 'full';
    const stream = full ? chunkPool.streamHash() : undefined;
    const slabs = chunkPool.slabs(Chunker.bufferSize(this.config.chunker));
    const lay = full ? input.layout : undefined;
    const chunkerKey = JSON.stringify(this.config.chunker);
    const reuse = lay?.reuse?.layout.chunker === chunkerKey ? lay.reuse : undefined;
    const records = input.records;
    /** The earlier layout's chunks by first key (only when the records can be indexed). */
    const byFirst =
      reuse && Array.isArray(records)
        ? new Map(reuse.layout.chunks.map((c) => [c.firstKey, c]))
        : undefined;
    const changed = reuse?.changed ?? [];
    /** This backup's chunks as cut (first and last key, records, plain bytes if kept). */
    const laid: Array<Omit<LaidChunk, 'id'>> = [];
    let keepLeft = lay?.keepBytes ?? 0;
    let reusedChunks = 0;
    let reusedBytes = 0;
    let reusedRecords = 0;
    let awaited = 0;
    let bytes = 0;
    let stored = 0;
    let done = 0;
    let deletes = 0;
    const reported = (r: ChunkRef, size: number): ChunkRef => {
      bytes += size;
      stored += r.stored;
      done++;
      input.progress?.({
        phase: 'backup',
        bytes,
        chunks: done,
        storedBytes: stored,
        ...(input.totalBytes !== undefined ? { totalBytes: input.totalBytes } : {}),
      });
      return r;
    };
    /** The plain bytes the stream, the chunk store and the layout share (see `keep`). */
    let plainOf: Buffer | undefined;
    const onChunk = (cut: Buffer) => {
      const size = cut.length;
      // Kept for a later reuse: copied out of the slab into memory of its own (shared when
      // the pool has workers, so that no one transfers it away), which the slab need not wait for.
      let buf = cut;
      plainOf = undefined;
      if (lay && lay.keepNew !== false && size <= keepLeft) {
        keepLeft -= size;
        if (slabs) {
          buf = Buffer.from(new SharedArrayBuffer(size));
          cut.copy(buf);
          slabs.give(cut);
        }
        plainOf = buf;
      }
      // Fed to the stream first: `put` may hand memory that is not shared to a worker.
      const hashed = stream?.update(buf);
      const p = this.chunks.put(buf).then((r) => reported(r, size));
      // Observed at once: a chunk may fail while an earlier one is being awaited.
      const written = p.catch(() => undefined);
      pending.push(p);
      const free = hashed ? Promise.all([written, hashed]) : written;
      released.push(free);
      if (slabs && buf === cut) void free.then(() => slabs.give(buf));
    };
    const chunker = new Chunker(this.config.chunker, onChunk, slabs);
    /** Index (in the record stream) of the first record of the chunk being cut. */
    let chunkStart = 0;
    let firstKey: string | undefined;
    let prev: string | undefined;
    // Keep pending promises observed so a failure is not an unhandled rejection.
    const settle: Promise<unknown>[] = [];
    /** Reuses `c` for the records from `i` on if it may (see `LayoutOptions`). */
    const indexed = records as ReadonlyArray<readonly [string, unknown]>;
    const reusable = async (c: LaidChunk | undefined, i: number, n: number): Promise<boolean> => {
      if (!c?.plain || c.plain.length !== c.size) return false;
      const last = i + c.records - 1;
      if (last >= n || indexed[last]?.[0] !== c.lastKey) return false;
      if (!c.cut && last !== n - 1) return false;
      if (anyIn(changed, c.firstKey, c.lastKey)) return false;
      return this.chunks.holds(c.id);
    };
    try {
      const n = byFirst ? (records as ReadonlyArray<unknown>).length : 0;
      let i = 0;
      for (const [key, value] of records) {
        if (i < chunkStart) {
          // Inside a reused chunk: its keys ascend (checked when it was written), and its
          // first and last are this stream's.
          i++;
          continue;
        }
        if (prev !== undefined && !(prev < key)) {
          throw new BackupError(
            'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
            `records are not in ascending key order at ${JSON.stringify(key)}`,
          );
        }
        if (value === undefined) {
          if (full) {
            throw new BackupError(
              'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
              'a full backup cannot hold deletes',
            );
          }
          deletes++;
        }
        if (byFirst && chunker.empty) {
          const c = byFirst.get(key);
          if (c && (await reusable(c, i, n))) {
            const size = c.size;
            const plain = c.plain as Buffer;
            const hashed = stream?.update(plain);
            const ref: ChunkRef = { id: c.id, size, stored: 0 };
            const p = (hashed ?? Promise.resolve()).then(() => reported(ref, size));
            pending.push(p);
            released.push(p.catch(() => undefined));
            // Its bytes stay kept for the next full if the budget still has room.
            const { plain: _, ...rest } = c;
            if (size <= keepLeft) {
              keepLeft -= size;
              laid.push({ ...rest, plain });
            } else laid.push(rest);
            reusedChunks++;
            reusedBytes += size;
            reusedRecords += c.records;
            chunkStart = i + c.records;
            prev = c.lastKey;
            i++;
            continue;
          }
        }
        prev = key;
        if (chunker.empty) firstKey = key;
        const before = pending.length;
        if (chunker.add(key, value)) {
          laid.push({
            size: 0,
            firstKey: firstKey as string,
            lastKey: key,
            records: i + 1 - chunkStart,
            cut: true,
            ...(plainOf ? { plain: plainOf } : {}),
          });
          chunkStart = i + 1;
        }
        i++;
        // At most WRITE_WINDOW chunks in flight (being hashed, compressed, written or fed to
        // the stream digest): bounds memory, and lets their slabs come back.
        while (pending.length - awaited >= WRITE_WINDOW) {
          await released[awaited];
          await pending[awaited++];
        }
        // A chunk was cut: let the event loop run (an agent applying entries, a node serving
        // writes in the same process) before hashing and chunking the next megabyte.
        if (pending.length > before) await yieldToEventLoop();
      }
      if (!chunker.empty) {
        chunker.finish();
        laid.push({
          size: 0,
          firstKey: firstKey as string,
          lastKey: prev as string,
          records: i - chunkStart,
          cut: false,
          ...(plainOf ? { plain: plainOf } : {}),
        });
      }
      const refs = await Promise.all(pending);
      const streamDigest = await stream?.hex();
      const layout: ChunkLayout | undefined = lay
        ? {
            chunker: chunkerKey,
            chunks: laid.map((c, k) => {
              const r = refs[k] as ChunkRef;
              return { ...c, id: r.id, size: r.size };
            }),
            reusedChunks,
            reusedBytes,
          }
        : undefined;
      return {
        refs,
        records: chunker.records + reusedRecords,
        deletes,
        ...(streamDigest !== undefined ? { streamDigest } : {}),
        ...(layout ? { layout } : {}),
      };
    } catch (err) {
      stream?.abandon();
      for (const p of pending) settle.push(p.catch(() => undefined));
      await Promise.all(settle);
      throw err;
    }
  }
}

/** Whether the ascending `keys` hold one in [lo, hi]. */
export function anyIn(keys: readonly string[], lo: string, hi: string): boolean {
  let a = 0;
  let b = keys.length;
  while (a < b) {
    const m = (a + b) >>> 1;
    if ((keys[m] as string) < lo) a = m + 1;
    else b = m;
  }
  return a < keys.length && (keys[a] as string) <= hi;
}

/** A macrotask turn (not a timer): pending I/O callbacks and messages run first. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

function seqOf(s: ScannedManifest): number {
  if (s.manifest) return s.manifest.seq;
  const m = /-(\d{6})[FDI]$/.exec(s.name);
  return m ? Number(m[1]) : 0;
}
