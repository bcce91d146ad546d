/** Durable storage for Synod: see docs/storage.md. */
export * from './data-dir.js';
export * from './errors.js';
export { type FileHardStateOptions, FileHardStateStore } from './file-hard-state.js';
export {
  FileLogStore,
  type FileLogStoreOptions,
  type RecoveryReport,
  type RepairReport,
} from './file-log.js';
export { FileSnapshotStore, type FileSnapshotStoreOptions } from './file-snapshots.js';
export { acquireDirLock, type DirLock } from './fs-util.js';
export * from './memory-disk.js';
export { type MemoryHardStateOptions, MemoryHardStateStore } from './memory-hard-state.js';
export { MemoryLogStore, type MemoryLogStoreOptions } from './memory-log.js';
export {
  corruptMemorySnapshot,
  type MemorySnapshotOptions,
  MemorySnapshotStore,
} from './memory-snapshots.js';
export type * from './types.js';
