/**
 * The KV state machine (actors/kv) as a `KeyedState`, so the backup agent keeps an exact copy
 * of a KV cluster's state and backs it up key by key. The adapter drives a real
 * `KvStateMachine` (the same code the cluster runs, so revisions, cas outcomes and session
 * dedup are identical) and exposes its state as byte values under three key spaces:
 *
 *     "k" + key          a user key: msgpack [value, createRev, modRev, version]
 *     "\0kv/rev"         the global revision, u64 (absent while it is 0)
 *     "\0kv/s/" + id     a KV client session: msgpack [id, floor, last, [[seq, result]…]]
 *
 * Every user key carries the "k" prefix, so no user key (which may start with "\0") can
 * collide with the reserved ones. The watch history is not backed up: a restored cluster
 * starts with its watch history compacted at the restored revision (a watch from an older
 * revision gets SYNOD_ERR_KV_COMPACTED, as after any compaction).
 *
 * `kvNodeImage` writes a restored state in the format a `synod node` (RaftNode +
 * SessionStateMachine + KvStateMachine) restores from; `kvEntriesFromNodeImage` reads that
 * format back (the agent uses it when the cluster sends its learner a snapshot).
 */
import { decodeValue, encodeValue } from '../../lib/codec.js';
import type { SessionsImage } from '../kv/sessions.js';
import { KvStateMachine, type KvStateMachineOptions } from '../kv/state-machine.js';
import type { KeyValue, KvOp, KvResult } from '../kv/types.js';
import {
  decodeReplicaImage,
  encodeReplicaImage,
  type ReplicaImage,
} from '../paxos/replica-image.js';
import { BackupError } from './errors.js';
import {
  PaxosSessionState,
  type PaxosSessionsImage,
  paxosSessionEntries,
} from './paxos-sessions.js';
import { encodeSession, SESSION_PREFIX, type SessionRule, SessionState } from './sessions.js';
import type { KeyedState } from './state.js';

export const KV_USER_PREFIX = 'k';
export const KV_REV_KEY = '\u0000kv/rev';
export const KV_SESSION_PREFIX = '\u0000kv/s/';

function u64(n: number): Uint8Array {
  const b = Buffer.allocUnsafe(8);
  b.writeBigUInt64BE(BigInt(n), 0);
  return b;
}

function readU64(v: Uint8Array): number {
  return Number(Buffer.from(v.buffer, v.byteOffset, v.byteLength).readBigUInt64BE(0));
}

type SessionTuple = SessionsImage[number];

/** Watch events a `KvKeyedState`'s state machine keeps (see its constructor). */
export const AGENT_WATCH_HISTORY = 1;

export class KvKeyedState implements KeyedState<KvOp> {
  private sm: KvStateMachine;
  /**
   * KeyValue objects are immutable (replaced on every write): encode each one once, with its
   * prefixed key, as the entry `entries` yields (the same pair object every time: a full
   * backup's capture of a mostly unchanged state then allocates nothing per unchanged key).
   */
  private readonly encoded = new WeakMap<KeyValue, [string, Uint8Array]>();
  private revBytes: Uint8Array | undefined;
  private revOf = -1;

  private readonly options: KvStateMachineOptions;

  /**
   * `machine`: adopt an existing state machine (its state becomes this one's). Unless
   * `options` say otherwise, the state machine keeps one watch event instead of its default
   * 10,000: nothing here serves a watch and no backup holds the watch history (`kvImage`
   * writes it compacted), and 10,000 retained events — each holding the key's previous value —
   * kept every overwritten value alive long enough for the garbage collector to promote it.
   */
  constructor(options: KvStateMachineOptions = {}, machine?: KvStateMachine) {
    this.options = { historyLimit: AGENT_WATCH_HISTORY, ...options };
    this.sm = machine ?? new KvStateMachine(this.options);
  }

  /** The live state machine (reads only: mutate it through `apply`). */
  get machine(): KvStateMachine {
    return this.sm;
  }

  apply(op: KvOp, meta: { index: number; term: number }): KvResult {
    return this.sm.apply(op, meta);
  }

  /** An array, not a generator: the agent asks this for every entry it applies. */
  keysTouched(op: KvOp): string[] {
    const o = op as { key?: unknown; s?: { c?: unknown } };
    const out: string[] = [];
    if (typeof o.key === 'string') out.push(KV_USER_PREFIX + o.key);
    out.push(KV_REV_KEY);
    const c = o.s?.c;
    if (typeof c === 'string') {
      out.push(KV_SESSION_PREFIX + c);
      // A new session beyond the limit evicts the least recently used tenth: any may go.
      if (this.sm.sessionCount >= this.sm.maxSessions && this.sm.sessionImage(c) === undefined) {
        for (const id of this.sm.sessionIds()) out.push(KV_SESSION_PREFIX + id);
      }
    }
    return out;
  }

  private entryOf(kv: KeyValue): [string, Uint8Array] {
    let e = this.encoded.get(kv);
    if (!e) {
      // The key flattened once (a concatenation is a rope until something reads it).
      const key = `${KV_USER_PREFIX}${kv.key}`;
      key.charCodeAt(key.length - 1);
      e = [key, encodeValue([kv.value, kv.createRev, kv.modRev, kv.version])];
      this.encoded.set(kv, e);
    }
    return e;
  }

  private encodeKv(kv: KeyValue): Uint8Array {
    return this.entryOf(kv)[1];
  }

  private rev(): Uint8Array | undefined {
    const r = this.sm.revision;
    if (r === 0) return undefined;
    if (r !== this.revOf) {
      this.revBytes = u64(r);
      this.revOf = r;
    }
    return this.revBytes;
  }

  get(key: string): Uint8Array | undefined {
    if (key.startsWith(KV_USER_PREFIX)) {
      const kv = this.sm.get(key.slice(1));
      return kv ? this.encodeKv(kv) : undefined;
    }
    if (key === KV_REV_KEY) return this.rev();
    if (key.startsWith(KV_SESSION_PREFIX)) {
      const s = this.sm.sessionImage(key.slice(KV_SESSION_PREFIX.length));
      return s ? encodeValue(s) : undefined;
    }
    return undefined;
  }

  get size(): number {
    return this.sm.size + this.sm.sessionCount + (this.sm.revision > 0 ? 1 : 0);
  }

  *entries(): IterableIterator<[string, Uint8Array]> {
    for (const kv of this.sm.range({ start: '' }).kvs) yield this.entryOf(kv);
    const rev = this.rev();
    if (rev) yield [KV_REV_KEY, rev];
    for (const id of this.sm.sessionIds()) {
      yield [KV_SESSION_PREFIX + id, encodeValue(this.sm.sessionImage(id))];
    }
  }

  load(entries: Iterable<readonly [string, Uint8Array]>): void {
    const kvs: KeyValue[] = [];
    const sessions: SessionTuple[] = [];
    let rev = 0;
    for (const [k, v] of entries) {
      if (k.startsWith(KV_USER_PREFIX)) {
        const [value, createRev, modRev, version] = decodeValue(v) as [
          string,
          number,
          number,
          number,
        ];
        kvs.push({ key: k.slice(1), value, createRev, modRev, version });
      } else if (k === KV_REV_KEY) {
        rev = readU64(v);
      } else if (k.startsWith(KV_SESSION_PREFIX)) {
        sessions.push(decodeValue(v) as SessionTuple);
      } else {
        throw new BackupError(
          'SYNOD_ERR_BACKUP_DIGEST_MISMATCH',
          `a KV backup holds an unknown key ${JSON.stringify(k.slice(0, 40))}: is this repository of another state machine?`,
        );
      }
    }
    this.sm = new KvStateMachine(this.options);
    // As `restore(kvImage(kvs, rev, 0, sessions))`, without encoding and decoding that image.
    this.sm.load({
      kvs,
      rev,
      index: 0,
      sessions: [...sessions].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0)),
    });
  }

  /** The KV snapshot image (KvStateMachine's format) of this state at `index`. */
  image(index: number): Uint8Array {
    const kvs = this.sm.range({ start: '' }).kvs;
    const sessions = [...this.sm.sessionIds()]
      .sort()
      .map((id) => this.sm.sessionImage(id) as SessionTuple);
    return kvImage(kvs, this.sm.revision, index, sessions);
  }
}

function kvImage(
  kvs: KeyValue[],
  rev: number,
  index: number,
  sessions: SessionTuple[],
): Uint8Array {
  const sorted = [...kvs].sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
  const ss = [...sessions].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  // The format of KvStateMachine.snapshot(): the watch history starts compacted at `rev`.
  return encodeValue({
    v: 1,
    rev,
    index,
    kvs: sorted,
    history: { compacted: rev, events: [] },
    sessions: ss,
  });
}

/**
 * A restored state as the snapshot image a `synod node` restores from: RaftNode's client
 * session table (SessionStateMachine's format) around the KV state machine's image.
 */
export function kvNodeImage(state: SessionRule<KvOp>, index: number): Uint8Array {
  if (!(state instanceof SessionState)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'a Raft node image needs Raft client sessions (this state carries Multi-Paxos sessions)',
    );
  }
  const inner = state.inner as KvKeyedState;
  return encodeValue({ v: 1, sessions: state.raftSessions(), user: inner.image(index) });
}

/**
 * A restored state as a Multi-Paxos replica snapshot image (what a `synod node --protocol
 * paxos` learner restores from): `{v: 1, sm: KvStateMachine image, sessions: ClientSessions
 * image}` (actors/paxos/multi-learner.ts).
 */
export function kvPaxosReplicaImage(state: SessionRule<KvOp>, index: number): Uint8Array {
  if (!(state instanceof PaxosSessionState)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'a Multi-Paxos replica image needs Multi-Paxos client sessions (this state carries Raft sessions)',
    );
  }
  const inner = state.inner as KvKeyedState;
  return encodeReplicaImage({
    sm: inner.image(index),
    sessions: state.toImage() as ReplicaImage['sessions'],
  });
}

/**
 * The agent's entries (Multi-Paxos sessions under "\0psession/", KV keys as above) of a
 * Multi-Paxos replica snapshot image: what a member's learner sends when the slots the agent
 * asks for are compacted.
 */
export function kvEntriesFromPaxosImage(
  image: Uint8Array,
  options: KvStateMachineOptions = {},
): Array<[string, Uint8Array]> {
  let v: ReplicaImage;
  try {
    v = decodeReplicaImage(image);
  } catch (err) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `the snapshot the cluster sent is not a Multi-Paxos replica image: ${(err as Error).message}`,
    );
  }
  const kv = new KvStateMachine(options);
  kv.restore(v.sm);
  const out: Array<[string, Uint8Array]> = [...new KvKeyedState(options, kv).entries()];
  out.push(...paxosSessionEntries(v.sessions as PaxosSessionsImage));
  return out;
}

/**
 * The agent's key/value entries (Raft sessions under "\0session/", KV keys as above) of a
 * node snapshot image: what a cluster sends its learner when the log it needs is compacted.
 */
export function kvEntriesFromNodeImage(
  image: Uint8Array,
  options: KvStateMachineOptions = {},
): Array<[string, Uint8Array]> {
  let v: { v?: number; sessions?: [string, number, unknown, number][]; user?: Uint8Array };
  try {
    v = decodeValue(image) as typeof v;
  } catch (err) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `the snapshot the cluster sent is not a Raft session + KV image: ${(err as Error).message}`,
    );
  }
  if (v?.v !== 1 || !Array.isArray(v.sessions) || !(v.user instanceof Uint8Array)) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'the snapshot the cluster sent is not a Raft session + KV image',
    );
  }
  const kv = new KvStateMachine(options);
  kv.restore(v.user);
  const ks = new KvKeyedState(options, kv);
  const out: Array<[string, Uint8Array]> = [...ks.entries()];
  for (const [id, seq, , lastIndex] of v.sessions)
    out.push([SESSION_PREFIX + id, encodeSession(seq, lastIndex)]);
  return out;
}
