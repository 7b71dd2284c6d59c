/**
 * Benchmark 1: replay real editing traces patch by patch. Each library turns every patch into its
 * own operation and applies it to a plain string (quill-delta: to a Delta document, by compose).
 * Every replay must end at the trace's endContent, or the benchmark throws.
 *
 * Run alone: npx tsx bench/apply-trace.ts
 */
import { apply, fromPatch } from '../src/ot/index.js';
import { Delta, type UnicodeTextOp, ot, unicodeText } from './peers.js';
import {
  type Timing,
  type Trace,
  count,
  expectSameText,
  isMain,
  loadTrace,
  measureCases,
  ms,
  printHeader,
  printTable,
  ratio,
  runsLabel,
} from './common.js';

interface Contender {
  readonly name: string;
  readonly replay: (trace: Trace) => string;
}

const contenders: readonly Contender[] = [
  {
    name: 'Otter',
    replay({ startContent, patches }) {
      let doc = startContent;
      for (const [pos, del, ins] of patches) doc = apply(doc, fromPatch(doc.length, pos, del, ins));
      return doc;
    },
  },
  {
    name: 'ot.js',
    replay({ startContent, patches }) {
      let doc = startContent;
      for (const [pos, del, ins] of patches) {
        doc = new ot.TextOperation()
          .retain(pos)
          .delete(del)
          .insert(ins)
          .retain(doc.length - pos - del)
          .apply(doc);
      }
      return doc;
    },
  },
  {
    // Counts code points; the traces are BMP-only, so positions equal UTF-16 offsets.
    name: 'ot-text-unicode',
    replay({ startContent, patches }) {
      let doc = startContent;
      for (const [pos, del, ins] of patches) {
        const op: UnicodeTextOp = [];
        if (pos > 0) op.push(pos);
        if (ins.length > 0) op.push(ins);
        if (del > 0) op.push({ d: del });
        doc = unicodeText.apply(doc, op);
      }
      return doc;
    },
  },
  {
    name: 'quill-delta',
    replay({ startContent, patches }) {
      let doc = new Delta().insert(startContent);
      for (const [pos, del, ins] of patches) {
        doc = doc.compose(new Delta().retain(pos).delete(del).insert(ins));
      }
      let text = '';
      for (const op of doc.ops) {
        if (typeof op.insert !== 'string') throw new Error('quill-delta: unexpected embed');
        text += op.insert;
      }
      return text;
    },
  },
  {
    name: 'naive string slicing',
    replay({ startContent, patches }) {
      let doc = startContent;
      for (const [pos, del, ins] of patches) doc = doc.slice(0, pos) + ins + doc.slice(pos + del);
      return doc;
    },
  },
];

const TRACES = ['automerge-paper', 'seph-blog1'] as const;

export interface ApplyResult {
  readonly trace: string;
  readonly timings: ReadonlyMap<string, Timing>;
}

export async function run(): Promise<ApplyResult[]> {
  printHeader('apply-trace: replay a trace, one operation per patch, on a plain string', [
    'harness (bench/common.ts measureCases): 1 warmup round, then up to 5 round-robin timed rounds',
    '(within ~15 s per trace); median and best wall time per replay, each including building the ops.',
    'A case slower than 4 s is timed by its single cold run. Every run is checked against endContent.',
  ]);
  const results: ApplyResult[] = [];
  for (const name of TRACES) {
    const trace = loadTrace(name);
    console.log(
      `${name}: ${count(trace.patches.length)} patches, final length ${count(trace.endContent.length)} code units`,
    );
    const timings = measureCases(
      contenders.map((c) => ({
        name: c.name,
        fn: () => c.replay(trace),
        check: (doc: string) => expectSameText(`${c.name} on ${name}`, doc, trace.endContent),
      })),
    );
    const otter = (timings.get('Otter') as Timing).median;
    printTable(
      ['library', 'median ms', 'best ms', 'runs', '× Otter', 'ns / patch'],
      contenders.map((c) => {
        const t = timings.get(c.name) as Timing;
        return [
          c.name,
          ms(t.median),
          ms(t.best),
          runsLabel(t),
          ratio(t.median, otter),
          ((t.median * 1e6) / trace.patches.length).toFixed(0),
        ];
      }),
    );
    results.push({ trace: name, timings });
  }
  return results;
}

if (isMain(import.meta.url)) await run();
