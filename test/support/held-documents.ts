/**
 * A stand-in for the Sequencer a RedisFanout watches, for tests of the fan-out alone: it holds
 * the documents it is given, records each refresh asked of it, and tells its watchers as
 * {@link HeldDocuments.hold} and {@link HeldDocuments.drop} change what it holds.
 */
import type { DocumentWatcher, RefreshNews } from '../../src/server/sequencer.js';

export class HeldDocuments {
  private readonly held: Set<string>;
  /** The watchers registered and not removed. */
  readonly watchers: DocumentWatcher[] = [];
  /** Each refresh asked: the document, and whether it carried a hint's ops. */
  readonly refreshed: Array<[string, boolean]> = [];

  constructor(initial: readonly string[] = []) {
    this.held = new Set(initial);
  }

  /** What the fan-out uses of a Sequencer. */
  readonly sequencer = {
    documents: (): string[] => [...this.held],
    held: (): undefined => undefined,
    refresh: (docId: string, news: RefreshNews = {}): Promise<number> => {
      this.refreshed.push([docId, news.ops !== undefined]);
      return Promise.resolve(0);
    },
    watchDocuments: (w: DocumentWatcher): (() => boolean) => {
      this.watchers.push(w);
      return () => this.watchers.splice(this.watchers.indexOf(w), 1).length > 0;
    },
  };

  /** Starts holding `docId`, telling the watchers. */
  hold(docId: string): void {
    this.held.add(docId);
    for (const w of this.watchers) w.held(docId);
  }

  /** Stops holding `docId`, telling the watchers. */
  drop(docId: string): void {
    this.held.delete(docId);
    for (const w of this.watchers) w.dropped(docId);
  }
}
