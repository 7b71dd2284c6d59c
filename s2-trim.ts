// Rollback while node a's Redis link is cut; an intruder on c writes past a snapshot (1000) with --retain-ops 0,
// so the op at a's held head is trimmed before a can compare it. RETAIN=none: control without trimming.
import { RedisProcess, startNodeX, newClient, converged, describeAll, notOnce, metric, Cleanup, sleep, waitFor, within, seed, RawClient, documentKeys, type Client, type Node } from './common.ts';
import { CutProxy } from './proxy.ts';
const cleanup = new Cleanup();
seed('s2');
const N = Number(process.env.N ?? 1005);
const RETAIN = process.env.RETAIN ?? '0';
const DOC = 'tr';
const PREFIX = 'hc2:';
const settled = (c: Client) => c.doc.lifecycle.phase === 'live' && c.doc.syncState.kind === 'synchronized';
async function main() {
  const redis = await RedisProcess.started(cleanup, 'hunt-c-s2-');
  const proxy = await new CutProxy(redis.port).start();
  cleanup.add(() => proxy.close());
  const extra = RETAIN === 'none' ? [] : ['--retain-ops', RETAIN];
  const a = await startNodeX(cleanup, 'a', `redis://127.0.0.1:${proxy.port}`, PREFIX, extra);
  const c = await startNodeX(cleanup, 'c', redis.url, PREFIX, extra);
  const c0 = newClient(cleanup, a, DOC, 'c0', 50);
  await within(c0.doc.ready, 10000, 'open');
  for (let i = 0; i < 10; i++) { c0.doc.insert(c0.doc.text.length, `«kept-${i}»`); c0.markers.push(`«kept-${i}»`); await waitFor('ack', () => settled(c0), 5000); }
  const k = documentKeys(PREFIX, DOC);
  const keys = Object.values(k).filter((x) => typeof x === 'string') as string[];
  const dumps = await Promise.all(keys.map(async (key) => [key, await redis.admin.dumpBuffer(key)] as const));
  c0.doc.insert(c0.doc.text.length, '«lost»'); c0.markers.push('«lost»');
  await waitFor('ack', () => settled(c0) && c0.doc.version === 11, 5000);
  console.log('c0 at v', c0.doc.version, 'redis head', await redis.admin.hget(k.meta, 'head'));
  proxy.cut();
  const m = redis.admin.multi();
  for (const [key, d] of dumps) { m.del(key); if (d !== null) m.restore(key, 0, d); }
  await m.exec();
  const raw = await RawClient.connect(c.ws + '/');
  await raw.hello('intruder');
  const op = await raw.opened(DOC);
  let v = op.v; let len = (op.text as string).length;
  const t0 = Date.now();
  for (let i = 0; i < N; i++) {
    const ins = i % 100 === 0 ? `«intr-${i}»` : 'x';
    const ans = await raw.submit(DOC, v, i + 1, [ins, len]);
    if (ans.type !== 'ack') { console.log('intruder refused', JSON.stringify(ans)); break; }
    v = ans.v; len += ins.length;
  }
  raw.terminate();
  console.log(`intruder wrote v${op.v}..v${v} in ${Date.now() - t0} ms; redis head ${await redis.admin.hget(k.meta, 'head')} trim ${await redis.admin.hget(k.meta, 'trim')} ops ${await redis.admin.zcard(k.ops)}`);
  proxy.restore();
  await sleep(8000);
  console.log(describeAll([c0]));
  console.log('c0 resets', c0.resets.map((e) => `${e.action} v${e.lost.version}`), 'violations', c0.violations.slice(0, 6));
  console.log('c0 has «lost»:', c0.doc.text.includes('«lost»'));
  let ok = true;
  try {
    const r = await converged(cleanup, [a, c], [c0]);
    const bad = notOnce(r.text, c0.markers);
    console.log(`converged v${r.version}; notOnce ${JSON.stringify(bad)}`);
    if (bad.length && c0.resets.length === 0) { ok = false; console.log('SILENT LOSS: markers missing and c0 never told'); }
  } catch (e) { ok = false; console.log('NOT CONVERGED', String(e).slice(0, 3000)); }
  for (const nd of [a, c]) console.log('metrics', nd.name, 'lost', await metric(nd, 'otter_documents_lost_total'), 'corrupt', await metric(nd, 'otter_storage_corrupt_total'));
  for (const nd of [a, c]) console.log('log', nd.name, (nd.cli.stdout.split('\n').slice(1).join('\n') + nd.cli.stderr).slice(-1500));
  console.log(ok ? 'RESULT OK' : 'RESULT FAIL');
}
main().then(() => console.log('DONE'), (e) => console.log('FAIL', e)).finally(async () => { await cleanup.run().catch(() => {}); RawClient.terminateAll(); process.exit(0); });
