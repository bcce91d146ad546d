/**
 * Which state machine a repository's backups hold, and how a restored state becomes the
 * snapshot image of a node data directory (and back):
 *
 *   map  the generic key → value `MapState`; node image = the sorted record stream
 *   kv   the KV service's state machine (kv-state.ts); node image = what `synod node`
 *        (RaftNode's SessionStateMachine around KvStateMachine) restores from
 *
 * repo.json's `state` names it (absent = map).
 */
import type { KvOp } from '../kv/types.js';
import { decodeImage, encodeImage } from './datadir.js';
import {
  KvKeyedState,
  kvEntriesFromNodeImage,
  kvEntriesFromPaxosImage,
  kvNodeImage,
  kvPaxosReplicaImage,
} from './kv-state.js';
import type { Repository } from './repository.js';
import type { SessionRule } from './sessions.js';
import { type KeyedStateFactory, MapState } from './state.js';

export interface StateKind<Op = unknown> {
  readonly name: 'map' | 'kv';
  readonly factory: KeyedStateFactory<Op>;
  /** The snapshot image a node restores from, of a restored state at `index`. */
  nodeImage(state: SessionRule<Op>, index: number): Uint8Array;
  /** The agent's entries (sessions included) of a node snapshot image. */
  entriesFromNodeImage(image: Uint8Array): Iterable<readonly [string, Uint8Array]>;
}

export const MAP_KIND: StateKind = {
  name: 'map',
  factory: () => new MapState() as never,
  nodeImage: (state) => encodeImage(state),
  entriesFromNodeImage: (image) => decodeImage(image),
};

export const KV_KIND: StateKind<KvOp> = {
  name: 'kv',
  factory: () => new KvKeyedState(),
  nodeImage: (state, index) => kvNodeImage(state, index),
  entriesFromNodeImage: (image) => kvEntriesFromNodeImage(image),
};

/**
 * The KV state of a Multi-Paxos cluster (`synod node --protocol paxos`): node image = the
 * learner's replica snapshot image (KV image + Multi-Paxos client sessions).
 */
export const PAXOS_KV_KIND: StateKind<KvOp> = {
  name: 'kv',
  factory: () => new KvKeyedState(),
  nodeImage: (state, index) => kvPaxosReplicaImage(state, index),
  entriesFromNodeImage: (image) => kvEntriesFromPaxosImage(image),
};

export function stateKindOf(repo: Repository): StateKind<unknown> {
  if (repo.config.state !== 'kv') return MAP_KIND;
  return (repo.config.protocol === 'paxos' ? PAXOS_KV_KIND : KV_KIND) as StateKind<unknown>;
}
