/**
 * The leaderless, eventually consistent store in one command:
 *
 *     npx tsx demos/eventual-store.ts
 *
 * Five replicas (a–e, each key on N = 3 of them) in this process on the in-memory transport.
 * The demo splits them into {a, b} and {c, d, e}, writes on both sides (a shopping cart, a like
 * counter, a tag set), shows the two sides disagreeing, heals the network, times anti-entropy
 * and hinted handoff until every replica holds the same state (equal Merkle roots), and then
 * shows what convergence gives: the cart's concurrent writes come back as **siblings** that a
 * client resolves with the causal context of its read, while the counter and the set (CRDTs)
 * merged by themselves — no increment and no tag lost.
 *
 * Everything goes through the KV client API (`LeaderlessKvClient`, lib/kv-client/leaderless.ts)
 * with per-request W/R. Runs on the system clock, or on any clock (the test uses a virtual one).
 */
import { type EventualCluster, startEventualCluster } from '../actors/gossip/embedded.js';
import { HashRing } from '../actors/gossip/ring.js';
import type { Clock } from '../lib/clock.js';
import { systemClock } from '../lib/clock.js';
import type { LeaderlessGetResult } from '../lib/kv-client/leaderless.js';
import type { KvResponse } from '../lib/kv-client/response.js';

export interface EventualDemoResult {
  /** The cart as each side read it during the partition. */
  readonly leftSaw: readonly string[];
  readonly rightSaw: readonly string[];
  /** Siblings after the heal, before resolving. */
  readonly siblings: readonly string[];
  readonly resolved: string | null;
  readonly likes: number;
  readonly tags: readonly string[];
  /** Time from heal to equal Merkle roots everywhere and no hint left (clock ms). */
  readonly convergedMs: number;
  /** Writes during the partition that were stored as hints for the other side. */
  readonly hinted: number;
}

const NODES = ['a', 'b', 'c', 'd', 'e'];
const LEFT = ['a', 'b'];
const RIGHT = ['c', 'd', 'e'];
const VNODES = 32;

/** The first key `base`, `base-1`, ... whose 3 replicas sit on both sides of the split. */
function spanningKey(base: string): string {
  const ring = new HashRing(NODES, VNODES);
  for (let i = 0; ; i++) {
    const key = i === 0 ? base : `${base}-${i}`;
    const pref = ring.preferenceList(key, 3);
    if (pref.some((n) => LEFT.includes(n)) && pref.some((n) => RIGHT.includes(n))) return key;
  }
}

function must<T>(r: KvResponse<T>, what: string): T {
  if (r.outcome !== 'ok')
    throw new Error(`${what}: ${r.outcome} ${r.error.code}: ${r.error.message}`);
  return r.value;
}

export async function runEventualStoreDemo(
  options: {
    clock?: Clock;
    print?: (line: string) => void;
    seed?: number;
    /** Called once the replicas are up (e.g. to serve the dashboard), with the ring's vnodes. */
    onCluster?: (cluster: EventualCluster, vnodes: number) => void | Promise<void>;
    /** Called after the story, before the replicas stop (e.g. to keep them up for play). */
    beforeStop?: (cluster: EventualCluster) => Promise<void>;
  } = {},
): Promise<EventualDemoResult> {
  const clock = options.clock ?? systemClock;
  const print = options.print ?? console.log;
  const sleep = (ms: number) => new Promise<void>((r) => clock.setTimer(ms, r));
  const cluster: EventualCluster = await startEventualCluster({
    clock,
    seed: options.seed ?? 7,
    nodes: NODES,
    replica: {
      n: 3,
      vnodes: VNODES,
      keyTypes: [
        { prefix: 'likes/', type: 'pn' },
        { prefix: 'tags/', type: 'orset' },
      ],
      // Generous for a loaded laptop: under load 15 a 1 s request timeout and 50 ms pings
      // made the demo fail with timeouts that the story does not mean to show.
      requestTimeoutMs: 5000,
      antiEntropyIntervalMs: 200,
      hintIntervalMs: 100,
      swim: { periodMs: 250, pingTimeoutMs: 150 },
    },
  });
  try {
    await cluster.ready();
    await options.onCluster?.(cluster, VNODES);
    const cart = spanningKey('cart');
    const likes = spanningKey('likes/post');
    const tags = spanningKey('tags/post');
    print(
      `1. five replicas a-e formed a ring (N = 3 replicas per key): "${cart}", "${likes}" and "${tags}" each live on both sides of the split to come`,
    );

    // One attempt must outlive the replicas' own request timeout (5 s here), or a slow
    // coordinator's answer arrives after the client gave up on it.
    const timeouts = { attemptTimeoutMs: 8000, timeoutMs: 10_000 };
    const alice = cluster.client({ node: 'a', ...timeouts });
    const bob = cluster.client({ node: 'c', ...timeouts });
    must(await alice.put(cart, 'milk', { w: 'all' }), 'first cart');
    const a0 = must(await alice.get(cart, { r: 'all' }), 'alice reads');
    const b0 = must(await bob.get(cart, { r: 'all' }), 'bob reads');
    print(
      `2. cart = "${a0.value}" (W = all); alice and bob both read it ("${b0.value}"), so both hold its causal context`,
    );

    cluster.split(LEFT, RIGHT);
    print('3. network split: {a, b} | {c, d, e} (the client still reaches every node)');
    // Both coordinators must see the other side dead before writing, or one of them still
    // waits on replicas it cannot reach instead of handing their writes to stand-ins.
    const seesDead = async (node: string, others: readonly string[]) => {
      const s = await cluster.snapshot(node);
      return s?.members.filter((m) => others.includes(m.id) && m.state === 'dead').length;
    };
    while (
      (await seesDead('a', RIGHT)) !== RIGHT.length ||
      (await seesDead('c', LEFT)) !== LEFT.length
    )
      await sleep(100);
    print('   SWIM on a: c, d, e are dead; on c: a, b are dead (no acks, suspicion timed out)');

    let hinted = 0;
    const wrote = (r: KvResponse<{ hinted: number }>, what: string) => {
      hinted += must(r, what).hinted;
    };
    wrote(await alice.put(cart, 'milk, eggs', { w: 'one' }), 'alice cart');
    wrote(await bob.put(cart, 'milk, bread', { w: 'one' }), 'bob cart');
    for (let i = 0; i < 3; i++) wrote(await alice.increment(likes, 1, { w: 'quorum' }), 'like');
    for (let i = 0; i < 4; i++) wrote(await bob.increment(likes, 1, { w: 'quorum' }), 'like');
    wrote(await alice.add(tags, 'fresh', { w: 'quorum' }), 'tag');
    wrote(await bob.add(tags, 'organic', { w: 'quorum' }), 'tag');
    print(
      `4. during the split: alice (via a) sets the cart to "milk, eggs", bob (via c) to "milk, bread"; 3 likes on the left, 4 on the right; tags "fresh" | "organic". ${hinted} replica writes went to stand-ins as hints (sloppy quorum)`,
    );
    // R = quorum inside each side: two replies from that side's replicas (and stand-ins)
    const left = must(await alice.get(cart, { r: 'quorum', node: 'b' }), 'left read');
    const right = must(await bob.get(cart, { r: 'quorum', node: 'd' }), 'right read');
    const ll = must(await alice.get(likes, { r: 'quorum', node: 'b' }), 'left likes');
    const rl = must(await bob.get(likes, { r: 'quorum', node: 'e' }), 'right likes');
    print(
      `5. the sides disagree (R = quorum on each side): left reads cart ${JSON.stringify(left.siblings)}, likes ${ll.crdt}; right reads cart ${JSON.stringify(right.siblings)}, likes ${rl.crdt}`,
    );

    const healedAt = clock.now();
    cluster.heal();
    print('6. network healed: anti-entropy (Merkle trees per key range) and hinted handoff run');
    for (;;) {
      if ((await cluster.divergence()) === 0) break;
      if (clock.now() - healedAt > 60_000) throw new Error('no convergence within 60 s');
      await sleep(20);
    }
    const convergedMs = Math.round(clock.now() - healedAt);
    print(
      `   converged ${convergedMs} ms after the heal: every key range has equal Merkle roots on all its replicas, no hint left`,
    );

    const seen: LeaderlessGetResult = must(await alice.get(cart, { r: 'all' }), 'cart after heal');
    const siblings = [...seen.siblings].sort();
    print(
      `7. cart: ${siblings.length} siblings ${JSON.stringify(siblings)} (conflict: ${seen.conflict}) — neither concurrent write was dropped`,
    );
    const merged = [...new Set(siblings.flatMap((s) => s.split(', ')))].join(', ');
    must(await alice.put(cart, merged, { w: 'all' }), 'resolve');
    const resolved = must(await bob.get(cart, { r: 'all' }), 'resolved').value;
    print(
      `   alice resolves with her read's context: cart = "${resolved}" (one value again, seen by bob)`,
    );
    const fl = must(await bob.get(likes, { r: 'all' }), 'likes');
    const ft = must(await bob.get(tags, { r: 'all' }), 'tags');
    print(
      `8. CRDTs merged by themselves: likes = ${fl.crdt} (3 + 4), tags = ${JSON.stringify(ft.crdt)}`,
    );
    await options.beforeStop?.(cluster);
    return {
      leftSaw: left.siblings,
      rightSaw: right.siblings,
      siblings,
      resolved,
      likes: fl.crdt as number,
      tags: ft.crdt as string[],
      convergedMs,
      hinted,
    };
  } finally {
    await cluster.stop();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await runEventualStoreDemo();
}
