/**
 * The KV client and `synod kv` against three real `synod node` processes over WebSockets:
 * bare `ws://` URLs (node ids read from the handshake), outcomes, and a watch that survives the
 * SIGKILL of the node serving it without a gap or a duplicate. Waits are bounded (promises with
 * a deadline, bounded polls of the nodes' status), never fixed sleeps.
 */
import t from 'tap';
import type { WatchEvent } from '../../actors/kv/types.js';
import { type ProcessCluster, startProcessCluster } from '../../bench/kv.js';
import { KvClient } from '../../lib/kv-client/client.js';
import { connect, resolvePeers } from '../../lib/kv-client/connect.js';
import type { NodeStatus } from '../../lib/node/node-admin.js';
import { runSynod, until } from '../helpers/node-processes.js';

async function synod(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const r = await runSynod(args, 60_000);
  return { code: r.code ?? -1, stdout: r.out, stderr: r.err };
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

let pc: ProcessCluster;
/** Index of the node the watch test SIGKILLs (-1: none yet). */
let killed = -1;
t.before(async () => {
  pc = await startProcessCluster({ n: 3 });
});
t.teardown(async () => {
  await pc?.stop();
});

t.test('bare URLs: node ids come from the handshake', async (t) => {
  const peers = await resolvePeers(pc.urls);
  t.same(
    peers.map((p) => p.id),
    [...pc.ids],
    'ids resolved in order',
  );
  t.same([...pc.client.nodes], [...pc.ids], 'the bench launcher connected by bare URLs');
  const mixed = await resolvePeers([`${pc.ids[0]}=${pc.urls[0]}`, pc.urls[1] as string]);
  t.same(
    mixed.map((p) => p.id),
    [pc.ids[0], pc.ids[1]],
    'id=url and bare URL mixed',
  );
  await t.rejects(resolvePeers(['not a url']), { code: 'SYNOD_ERR_KV_INVALID_ARGUMENT' });
  await t.rejects(resolvePeers([`${pc.urls[0]}`, `${pc.ids[1]}=${pc.urls[0]}`]), {
    code: 'SYNOD_ERR_KV_INVALID_ARGUMENT',
  });
  await t.rejects(resolvePeers(['ws://127.0.0.1:1'], { timeoutMs: 2000 }), {
    code: 'SYNOD_ERR_KV_UNAVAILABLE',
    message: /nothing listens/,
  });
});

t.test('synod kv with --cluster ws://… (bare URLs)', async (t) => {
  const cluster = ['--cluster', pc.urls.join(','), '--secret-file', pc.secretFile];
  const put = await synod(['kv', 'put', 'cli/k', 'hello', ...cluster]);
  t.equal(put.code, 0, `put exits 0 (${put.stderr})`);
  t.match(put.stdout, /^ok, revision \d+\n$/);
  const get = await synod(['kv', 'get', 'cli/k', '--consistency', 'session', ...cluster, '--json']);
  t.equal(get.code, 0, `get exits 0 (${get.stderr})`);
  const r = JSON.parse(get.stdout) as { outcome: string; value: { value: string } };
  t.equal(r.outcome, 'ok');
  t.equal(r.value.value, 'hello', 'reads the value written by the other process');
  const bad = await synod([
    'kv',
    'get',
    'k',
    '--cluster',
    'nonsense',
    '--secret-file',
    pc.secretFile,
  ]);
  t.equal(bad.code, 2, 'a malformed entry is a usage error');
  t.match(bad.stderr, /not a node URL/);
  const gone = await synod(['kv', 'get', 'k', '--cluster', 'ws://127.0.0.1:1']);
  t.equal(gone.code, 1, 'nothing listening: exit 1');
  t.match(
    gone.stderr,
    /^synod kv: SYNOD_ERR_KV_UNAVAILABLE: nothing listens at ws:\/\/127\.0\.0\.1:1/,
  );
});

t.test('strong reads are served on a follower’s witness (docs/kv.md)', async (t) => {
  // The node reaches Raft through wrappers (the draining log): this is where witnessed reads
  // once silently fell back to the batched round, every read, with every unit test green.
  const kv = new KvClient({
    system: pc.client.system,
    nodes: [...pc.client.nodes],
    witnessReads: true,
    read: { level: 'strong' },
  });
  const w = await kv.put('wr/k', 'v1');
  t.equal(w.outcome, 'ok');
  const status = async (): Promise<NodeStatus> =>
    (await pc.client.system.ask(
      `${pc.leader}/admin`,
      { type: 'node.status' } as never,
      5000,
    )) as NodeStatus;
  const before = (await status()).witnessedReads ?? 0;
  for (let i = 0; i < 20; i++)
    t.match(await kv.get('wr/k'), { outcome: 'ok', value: { value: 'v1' } });
  t.equal(kv.stats.witnessed, 20, 'every read sent a witness');
  const served = ((await status()).witnessedReads ?? 0) - before;
  t.ok(served >= 10, `the leader served ${served} of 20 on witnesses`);
  await kv.close();
});

t.test('a watch survives SIGKILL of its node: every revision once, in order', async (t) => {
  const kv = pc.client;
  const follower = pc.ids.find((id) => id !== pc.leader) as string;
  const start = await kv.put('w/0', 'start');
  t.equal(start.outcome, 'ok');
  const fromRev = start.outcome === 'ok' ? start.value.rev : 0;
  const events: WatchEvent[] = [];
  const total = 20;
  let resolveDone: () => void = () => {};
  const done = new Promise<void>((r) => {
    resolveDone = r;
  });
  const sub = kv.watch('w/', { prefix: true, fromRev, node: follower }).subscribe({
    next: (e) => {
      events.push(e);
      if (events.length >= total + 1) resolveDone();
    },
    error: (err) => t.fail(`watch errored: ${String(err)}`),
  });
  const writer = await connect(
    pc.urls.filter((_, i) => pc.ids[i] !== follower),
    { secret: pc.secret },
  );
  t.teardown(() => writer.disconnect());
  const acked: number[] = [];
  for (let i = 1; i <= total; i++) {
    if (i === total / 2) {
      killed = pc.ids.indexOf(follower);
      pc.kill(follower);
    }
    const w = await writer.put(`w/${i}`, `v${i}`);
    t.equal(w.outcome, 'ok', `write ${i}`);
    if (w.outcome === 'ok') acked.push(w.value.rev);
  }
  await within(done, 60_000, 'the watch to deliver every write');
  sub.unsubscribe();
  const revs = events.map((e) => e.rev);
  t.same(revs, [fromRev, ...acked], 'every revision exactly once, in order, across the kill');
  t.same(
    events.slice(1).map((e) => e.value),
    acked.map((_, i) => `v${i + 1}`),
    'values match the writes',
  );
});

t.test(
  'a client that knows only a follower writes through it (forwarded to the leader)',
  async (t) => {
    // The leader now (not the one at start: on a loaded machine an election may have happened
    // since), as the live nodes name it; then the last live follower (the watch test above
    // killed the first follower).
    const leaderNow = await until('the live nodes to agree on a leader', async () => {
      const named = new Set<string | undefined>();
      for (const [i, id] of pc.ids.entries()) {
        if (i === killed) continue;
        const st = await pc.client.status(id);
        named.add(st.outcome === 'ok' ? st.value.leader : undefined);
      }
      const [l] = named;
      return named.size === 1 && l !== undefined ? l : undefined;
    });
    const follower = pc.ids.findLastIndex((id, i) => id !== leaderNow && i !== killed);
    // discover: false keeps the client to that one node (no member list learned from it)
    const only = await connect([pc.urls[follower] as string], {
      secret: pc.secret,
      discover: false,
    });
    t.same([...only.nodes], [pc.ids[follower]], 'the client knows one node');
    t.teardown(() => only.disconnect());
    const w = await only.put('fwd/k', 'through a follower');
    t.equal(w.outcome, 'ok', 'the follower forwarded the write');
    const by = w.outcome === 'ok' ? w.servedBy : '';
    t.ok(
      by !== pc.ids[follower] && pc.ids.includes(by),
      `applied by the leader (${by}), not by the follower ${pc.ids[follower]}`,
    );
    const again = await only.put('fwd/k', 'again');
    t.equal(again.outcome, 'ok', 'and the next one');
    const r = await pc.client.get('fwd/k');
    t.equal(r.outcome === 'ok' && r.value.value, 'again', 'a strong read sees it');
  },
);
