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
import { KvKeyedState, kvEntriesFromNodeImage, kvNodeImage } from './kv-state.js';
import type { Repository } from './repository.js';
import type { SessionState } from './sessions.js';
import { type KeyedStateFactory, MapState } from './state.js';

export interface StateKind<Op = unknown> {
  readonly name: 'map' | 'kv';
  readonly factory: KeyedStateFactory<Op>;
  /** The snapshot image a node restores from, of a restored state at `index`. */
  nodeImage(state: SessionState<Op>, index: number): Uint8Array;
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

export function stateKindOf(repo: Repository): StateKind<unknown> {
  return (repo.config.state === 'kv' ? KV_KIND : MAP_KIND) as StateKind<unknown>;
}
