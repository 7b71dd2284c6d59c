/**
 * What the client storage tests share: fast reconnection options, a marker count, and an
 * observer of a document on the live server.
 */
import { WebSocket } from 'ws';
import type { CollaborativeDocument, ConnectionOptions } from '../../src/client/index.js';
import type { LiveServer } from '../support/live-server.js';
import { within } from '../support/wait.js';

/** Reconnection and save retries in tens of ms, so faults heal quickly. */
export const FAST: ConnectionOptions = { minReconnectDelay: 10, maxReconnectDelay: 40, retryDelay: 20 };

/** How many times `marker` occurs in `text`. */
export function count(text: string, marker: string): number {
  return text.split(marker).length - 1;
}

/** A connection without storage to `live` that watches document `docId` (open once it resolves). */
export async function observe(live: LiveServer, docId: string): Promise<CollaborativeDocument> {
  const doc = live.connect({ WebSocket, ...FAST }).open(docId);
  await within(doc.ready, 5000, 'the observer opening');
  return doc;
}
