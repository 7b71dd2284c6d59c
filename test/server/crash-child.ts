/**
 * Child process of crash.test.ts: opens a SqliteStore + Sequencer on the file given as the
 * first argument and submits a stream of ops for one client, several at a time (so group
 * commit batches them), until it is killed. Each op inserts a unique marker "<seq>" at a
 * marker boundary of the text it last saw acknowledged. Prints, one line each:
 *   sent <seq> <baseVersion> <op as JSON>   before submitting
 *   ack <seq> <version>                     after the submit resolved (the op is durable),
 *                                           sometimes a few ms later (an ack in transit)
 *   error <seq> <code> <message>            if a submit rejects (then exits with code 1)
 * Run: node --import tsx test/server/crash-child.ts <dbfile>
 */
import { type Component, apply, fromPatch } from '../../src/ot/index.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import { below, seededRandom } from '../support/random.js';

export const CRASH_DOC = 'crash-doc';
export const CRASH_CLIENT = 'crash-client';

function main(file: string): void {
  const store = new SqliteStore(file);
  const sequencer = new Sequencer(store, { snapshotEvery: 64, idleTimeout: 0 });
  const window = 8;
  const max = 1_000_000;
  let ackedText = '';
  let ackedVersion = 0;
  let nextSeq = 1;
  let inFlight = 0;
  const random = seededRandom(0x9e3779b9);
  const rand = (n: number): number => below(random, n);
  // Synchronous for pipes on Linux. Were a line still buffered when killed, the parent would
  // only see fewer acks: the check stays sound, as "acknowledged" means "seen by the parent".
  const say = (line: string): void => {
    process.stdout.write(`${line}\n`);
  };

  /** A random boundary between markers (or either end) of `text`. */
  const boundary = (text: string): number => {
    const ends = [0];
    for (let i = 0; i < text.length; i++) if (text.charCodeAt(i) === 0x3e /* > */) ends.push(i + 1);
    return ends[rand(ends.length)] as number;
  };

  const pump = (): void => {
    while (inFlight < window && nextSeq <= max) {
      const seq = nextSeq++;
      const baseVersion = ackedVersion;
      const op: Component[] = fromPatch(ackedText.length, boundary(ackedText), 0, `<${seq}>`);
      say(`sent ${seq} ${baseVersion} ${JSON.stringify(op)}`);
      inFlight++;
      sequencer.submit({ docId: CRASH_DOC, clientId: CRASH_CLIENT, seq, baseVersion, op }).then(
        (r) => {
          inFlight--;
          // Answers come in version order; each is this client's next version.
          if (r.duplicate || r.version !== ackedVersion + 1) {
            say(`error ${seq} unexpected ${JSON.stringify(r)}`);
            process.exit(1);
          }
          ackedText = apply(ackedText, r.op);
          ackedVersion = r.version;
          // The op is durable now; like a server whose ack is still on the wire, print the
          // ack a little later (sometimes), so a kill can fall between commit and ack.
          const version = r.version;
          if (rand(4) === 0) setTimeout(() => say(`ack ${seq} ${version}`), rand(5));
          else say(`ack ${seq} ${version}`);
          pump();
        },
        (e: unknown) => {
          const err = e as { code?: string; message?: string };
          say(`error ${seq} ${err.code ?? 'unknown'} ${err.message ?? String(e)}`);
          process.exit(1);
        },
      );
    }
  };

  pump();
  // Never linger if the parent forgot to kill us.
  setTimeout(() => process.exit(2), 60_000);
}

const file = process.argv[2];
if (file === undefined) {
  process.stderr.write('usage: crash-child.ts <dbfile>\n');
  process.exit(64);
}
main(file);
