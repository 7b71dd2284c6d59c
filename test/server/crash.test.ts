/**
 * Crash safety: a child process streams acknowledged ops into a SqliteStore and is killed with
 * SIGKILL mid-stream. Reopened, the file must hold every acknowledged op at its version, a
 * contiguous log of valid ops, and no marker twice; resubmitting every op that was sent but not
 * acknowledged must apply each exactly once.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { type Component, apply, checkOperation } from '../../src/ot/index.js';
import { Sequencer } from '../../src/server/sequencer.js';
import { SqliteStore } from '../../src/server/sqlite-store.js';
import { makeTempDir, removeTempDir } from '../support/temp-dir.js';
import { within } from '../support/wait.js';

const CHILD = fileURLToPath(new URL('./crash-child.ts', import.meta.url));
const DOC = 'crash-doc';
const CLIENT = 'crash-client';
const MIN_ACKS = 200;

interface Sent {
  seq: number;
  baseVersion: number;
  op: Component[];
}

describe('crash safety of SqliteStore + Sequencer', () => {
  let dir: string | undefined;
  let child: ChildProcess | undefined;

  afterEach(() => {
    if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    child = undefined;
    if (dir !== undefined) removeTempDir(dir);
    dir = undefined;
  });

  it('keeps every acknowledged op after SIGKILL, and resubmissions apply exactly once', async () => {
    dir = makeTempDir('otter-crash-');
    const file = join(dir, 'crash.db');
    const proc = spawn(process.execPath, ['--import', 'tsx', CHILD, file], {
      cwd: process.cwd(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child = proc;

    const sent = new Map<number, Sent>();
    const acks = new Map<number, number>();
    const errors: string[] = [];
    let stderr = '';
    let pending = '';
    const onLine = (line: string): void => {
      const [kind, a, b, ...rest] = line.split(' ');
      if (kind === 'sent') {
        sent.set(Number(a), { seq: Number(a), baseVersion: Number(b), op: JSON.parse(rest.join(' ')) as Component[] });
      } else if (kind === 'ack') {
        acks.set(Number(a), Number(b));
      } else {
        errors.push(line);
      }
    };
    let enough!: () => void;
    const gotEnough = new Promise<void>((resolve) => (enough = resolve));
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      pending += chunk;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
      if (acks.size >= MIN_ACKS || errors.length > 0) enough();
    });
    proc.stderr.setEncoding('utf8');
    proc.stderr.on('data', (chunk: string) => (stderr += chunk));
    const exited = new Promise<void>((resolve) => proc.on('close', () => resolve()));
    void exited.then(() => enough());

    await within(gotEnough, 20_000, `the child's first ${MIN_ACKS} acks`).catch((e: unknown) => {
      throw new Error(`${String(e)}; stderr: ${stderr}`);
    });
    expect(errors, stderr).toEqual([]);
    expect(acks.size, `child exited early; stderr: ${stderr}`).toBeGreaterThanOrEqual(MIN_ACKS);
    proc.kill('SIGKILL');
    await within(exited, 10_000, 'the killed child closing its pipes');
    expect(proc.signalCode).toBe('SIGKILL');
    expect(errors).toEqual([]);
    // A line cut by the kill is simply not counted (it was never fully written).

    // 1. The file as a plain SQLite database: contiguous versions 1..head, every op valid.
    const raw = new Database(file);
    let head: number;
    let text = '';
    try {
      const doc = raw.prepare('SELECT head, trimmed_to FROM documents WHERE doc_id = ?').get(DOC) as
        | { head: number; trimmed_to: number }
        | undefined;
      expect(doc).toBeDefined();
      head = doc?.head ?? 0;
      expect(doc?.trimmed_to).toBe(0);
      const rows = raw
        .prepare('SELECT version, op, client_id, seq FROM ops WHERE doc_id = ? ORDER BY version')
        .all(DOC) as Array<{ version: number; op: string; client_id: string; seq: number }>;
      expect(rows.map((r) => r.version)).toEqual(Array.from({ length: head }, (_, i) => i + 1));
      for (const r of rows) {
        const op = JSON.parse(r.op) as Component[];
        expect(() => checkOperation(op)).not.toThrow();
        text = apply(text, op);
        expect(r.client_id).toBe(CLIENT);
        expect(r.seq).toBe(r.version); // one client: its seq k produced version k
      }
    } finally {
      raw.close();
    }
    // Every acknowledged op is there, at the version it was acknowledged with.
    expect(head).toBeGreaterThanOrEqual(acks.size);
    for (const [seq, version] of acks) expect(version).toBe(seq);
    expect(Math.max(...acks.keys())).toBeLessThanOrEqual(head);
    // Nothing beyond what was sent, no marker twice, nothing but markers.
    expect(head).toBeLessThanOrEqual(sent.size);
    const markers = [...text.matchAll(/<(\d+)>/g)].map((m) => Number(m[1]));
    expect(text.replace(/<\d+>/g, '')).toBe('');
    expect(new Set(markers).size).toBe(markers.length);
    expect([...markers].sort((a, b) => a - b)).toEqual(Array.from({ length: head }, (_, i) => i + 1));

    // 2. Reopened by the server: resubmit everything sent but not acknowledged, in order.
    const store = new SqliteStore(file);
    const sequencer = new Sequencer(store, { idleTimeout: 0 });
    try {
      const loaded = await sequencer.getSnapshot(DOC);
      expect(loaded).toMatchObject({ version: head, text });
      const unacked = [...sent.values()].filter((s) => !acks.has(s.seq)).sort((a, b) => a.seq - b.seq);
      let recognised = 0;
      for (const s of unacked) {
        const request = { docId: DOC, clientId: CLIENT, seq: s.seq, baseVersion: s.baseVersion, op: s.op };
        if (s.seq < head) {
          // Committed before the kill, unacknowledged, and not the client's last applied seq:
          // found in the history after its base version, it is answered with its version.
          await expect(sequencer.submit(request)).resolves.toMatchObject({ duplicate: true, version: s.seq });
          recognised++;
        } else if (s.seq === head) {
          await expect(sequencer.submit(request)).resolves.toMatchObject({ duplicate: true, version: head });
          recognised++;
        } else {
          // Never committed: applied now, exactly once, at the next version.
          await expect(sequencer.submit(request)).resolves.toMatchObject({ duplicate: false, version: s.seq });
        }
      }
      expect(recognised).toBe(head - acks.size);
      // Resubmitting the last op again is a duplicate, never a second copy.
      const last = sent.get(sent.size) as Sent;
      await expect(
        sequencer.submit({ docId: DOC, clientId: CLIENT, seq: last.seq, baseVersion: last.baseVersion, op: last.op }),
      ).resolves.toMatchObject({ duplicate: true, version: last.seq });

      const final = await sequencer.getSnapshot(DOC);
      expect(final.version).toBe(sent.size);
      const finalMarkers = [...final.text.matchAll(/<(\d+)>/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
      expect(final.text.replace(/<\d+>/g, '')).toBe('');
      expect(finalMarkers).toEqual(Array.from({ length: sent.size }, (_, i) => i + 1));
    } finally {
      await sequencer.close();
      await store.close();
    }
  });
});
