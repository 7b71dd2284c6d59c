/**
 * `otter/client`: the isomorphic Otter client. Browser-safe: it imports only `otter/ot` and
 * the wire protocol, never Node or server code.
 *
 *   const connection = new Connection('wss://example.com/otter', { getToken });
 *   const doc = connection.open('notes');
 *   await doc.ready;
 *   doc.insert(0, 'hello');
 *   doc.on('change', ({ op, local }) => { if (!local) editor.apply(op); });
 */
export {
  type ConnectionEvents,
  type ConnectionOptions,
  type ConnectionState,
  type SocketHandler,
  type WebSocketConstructor,
  type WebSocketLike,
  Connection,
} from './connection.js';
export {
  type ChangeEvent,
  type DocumentEvents,
  type DocumentMessage,
  type DocumentOptions,
  type DocumentTransport,
  type Presence,
  type PresenceEvent,
  type ResetEvent,
  type DivergedEvent,
  type MergedEvent,
  type RevokedEvent,
  CollaborativeDocument,
} from './document.js';
export { type Listener, Emitter } from './emitter.js';
export { type SelectionInput, localToServer, mapRemoteSelection, serverToLocal, toRanges } from './selection.js';
export {
  type AckResult,
  type AwaitingConfirm,
  type AwaitingWithBuffer,
  type LocalResult,
  type RebaseResult,
  type RemoteResult,
  type Synchronized,
  type SyncState,
  SyncStateError,
  ack,
  applyLocal,
  applyRemote,
  discardUnsent,
  fitOutstanding,
  pendingOp,
  rebaseOnSnapshot,
  rejectOutstanding,
  synchronized,
  transformLocalSelection,
} from './sync.js';
export {
  type OpBudget,
  DEFAULT_LIMITS,
  UNLIMITED,
  budgetFor,
  checkLimits,
  fits,
  opBytes,
  opLength,
  splitOp,
} from './split.js';
export {
  type Handshake,
  OTTER_SUBPROTOCOL,
  TOKEN_SUBPROTOCOL_PREFIX,
  handshake,
  tokenExpiry,
} from './token.js';
export { reconnectDelay } from './backoff.js';
