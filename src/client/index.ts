/**
 * `otter/client`: the isomorphic Otter client. Browser-safe: it imports only `otter/ot` and
 * the wire protocol, never Node or server code.
 *
 *   const connection = new Connection('wss://example.com/otter', { getToken });
 *   const doc = connection.open('notes');
 *   await doc.ready;
 *   doc.insert(0, 'hello');
 *   doc.on('change', ({ op, local }) => { if (!local) editor.apply(op); });
 *
 * This is the whole public surface: the connection and its documents, their options and
 * events, the client storage that keeps documents between visits, and the error and close-code registry an application classifies failures with. The
 * sync state machine, op splitting, the handshake and the backoff are internal to this folder
 * and may change in any release (`test/product/exports.test.ts` holds the list).
 */
export {
  type ConnectionEvents,
  type ConnectionOptions,
  type ConnectionState,
  type FetchLike,
  type SocketHandler,
  type WebSocketConstructor,
  type WebSocketLike,
  Connection,
} from './connection.js';
export {
  type ChangeEvent,
  type DocumentEvents,
  type DocumentOptions,
  type Presence,
  type PresenceEvent,
  type ResetEvent,
  type DivergedEvent,
  type MergedEvent,
  type RevokedEvent,
  type UnsavedEvent,
  CollaborativeDocument,
} from './document.js';
export { type IndexedDbStorageOptions, IndexedDbStorage } from './indexeddb-storage.js';
export type { SelectionInput } from './selection.js';
export { type ClientIdLease, type ClientStorage, type StoredDocument, MemoryClientStorage } from './storage.js';
export { type UndoManagerOptions, UndoManager } from './undo.js';
export { ErrorCode, OtterError } from '../protocol/errors.js';
export { CloseCode, type ErrorMessage, type ErrorRef, type PresenceProfile, type ServerLimits } from '../protocol/messages.js';
export { ProtocolError } from '../protocol/parse.js';
