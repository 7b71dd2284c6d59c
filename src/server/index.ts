/**
 * `otter/server`: the authoritative side of Otter — the WebSocket server, the per-document
 * sequencer, its stores, and the authentication and authorization hooks.
 */
export { ErrorCode, OtterError } from '../protocol/errors.js';
export {
  type AppliedListener,
  type DocumentWatcher,
  type OpenResult,
  type RefreshNews,
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
export type { RedisClusterSeeds } from './redis-connection.js';
export { type RedisClient, RedisStore, type RedisStoreOptions } from './redis-store.js';
export { StoreOpenError } from './sqlite-schema.js';
export { StorageCorruptError } from './integrity.js';
export { type OtterServer, type ServerOptions, createServer } from './ws-server.js';
export { SESSION_DEFAULTS, type SessionOptions } from './session.js';
export { type Access, type Authenticate, type Authorize, type Identity, type JwtOptions, jwtAuthenticator } from './auth.js';
export { type Logger, type LogFn, type Telemetry } from './telemetry.js';
export { Metrics } from './metrics.js';
export {
  type ReadinessOptions,
  type ReadinessStatus,
  StoreReadiness,
  describeStoreError,
  readinessAnswer,
} from './readiness.js';
