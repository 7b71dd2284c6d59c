/**
 * `otter/server`: the authoritative side of Otter — the per-document sequencer and its stores.
 */
export { ErrorCode, OtterError } from '../protocol/errors.js';
export {
  type AppliedListener,
  Sequencer,
  type SequencerOptions,
  type SubmitRequest,
  type SubmitAnswer,
  type SubmitResult,
} from './sequencer.js';
export {
  type ClientMark,
  type LoadedDocument,
  type OpRecord,
  type Snapshot,
  type Store,
  VersionConflictError,
} from './store.js';
export { MemoryStore } from './memory-store.js';
export { SqliteStore, type SqliteStoreOptions } from './sqlite-store.js';
export { Rope } from './rope.js';
export { type OtterServer, type ServerOptions, createServer } from './ws-server.js';
export type { OpenResult } from './sequencer.js';
