/**
 * "Clean shutdown on SIGINT/SIGTERM (finish in-flight writes, close the log)", with real
 * `synod node` processes: SIGTERM reaches the Raft leader while 24 writers keep a write in
 * flight each.
 *
 * - Every write the leader had taken is answered with its real outcome: ok (it committed while
 *   the leader drained), or a definite "not applied" for one that arrived during the shutdown
 *   (SYNOD_ERR_NODE_SHUTTING_DOWN). None is answered indeterminate, and none goes unanswered.
 *   Before, shutdown failed pending proposals as SYNOD_ERR_KV_STOPPED (indeterminate).
 * - The leader exits 0 and logs how many in-flight writes it finished.
 * - Raft: once its in-flight writes are done it hands its leadership to another voter and sees it lead the next
 *   term before it closes (leadership transfer on shutdown, as etcd does), so the others do
 *   not wait out an election timeout.
 * - After the other two are stopped the same way and all three restart from their data
 *   directories, every write a writer saw acknowledged reads back with its value.
 *
 * The writers ask the leader's KV service directly (no client retries), so what the test sees
 * is exactly what the leader answered. Waits are bounded; nothing sleeps on a timer.
 */
import t from 'tap';
import { connect, type RemoteKvClient } from '../../lib/kv-client/connect.js';
import { NodeProcesses, TEST_SECRET, until } from '../helpers/node-processes.js';

const WRITERS = 24;

interface Answer {
  writer: number;
  q: number;
  key: string;
  value: string;
  /** ok, failed, indeterminate, or the ask's own error (no answer). */
  outcome: 'ok' | 'failed' | 'indeterminate' | 'no answer';
  code?: string;
}

/**
 * Raft in CI; `SYNOD_SIGTERM_PROTOCOLS=raft,paxos` also runs it on Multi-Paxos nodes (its
 * distinguished proposer gets the SIGTERM).
 */
const PROTOCOLS = (process.env.SYNOD_SIGTERM_PROTOCOLS ?? 'raft').split(',');
let procs: NodeProcesses;
let urls: string[] = [];

async function client(): Promise<RemoteKvClient> {
  return until(
    'a client that writes',
    async () => {
      const c = await connect(urls, { secret: TEST_SECRET, timeoutMs: 3000 }).catch(
        () => undefined,
      );
      if (!c) return undefined;
      if ((await c.put('probe', 'x')).outcome === 'ok') return c;
      await c.disconnect();
      return undefined;
    },
    120_000,
    300,
  );
}

async function leaderOf(c: RemoteKvClient): Promise<string> {
  return until('a leader', async () => {
    for (const id of procs.nodes.keys()) {
      const s = (await c.system
        .ask(`${id}/admin`, { type: 'node.status' } as never, 2000)
        .catch(() => undefined)) as { role?: string } | undefined;
      if (s?.role === 'leader') return id;
    }
    return undefined;
  });
}

for (const protocol of PROTOCOLS)
  t.test(
    `${protocol}: SIGTERM to the leader under load: in-flight writes finish, acknowledged writes survive`,
    async (t) => {
      procs = await NodeProcesses.create(['a', 'b', 'c']);
      t.teardown(() => procs.close());
      const args = [
        '--log-format',
        'json',
        ...(protocol === 'paxos' ? ['--protocol', 'paxos'] : []),
      ];
      procs.startAll(() => args);
      urls = [...procs.nodes.values()].map((n) => n.url);
      const c1 = await client();
      const leader = await leaderOf(c1);
      t.comment(`leader ${leader}`);
      const answers: Answer[] = [];
      let acked = 0;
      const run = Math.random().toString(36).slice(2, 8);
      const writer = async (w: number) => {
        for (let q = 1; ; q++) {
          const key = `sig/${w}/${q}`;
          const value = `v${w}.${q}`;
          const reply = (await c1.system
            .ask(
              `${leader}/kv`,
              {
                type: 'kv.write',
                op: { t: 'put', key, value },
                session: { c: `sig-${run}-${w}`, q, a: q - 1 },
                timeoutMs: 4000,
              } as never,
              6000,
            )
            .catch((e: { code?: string }) => ({ askError: e?.code ?? String(e) }))) as
            | { ok: true }
            | { ok: false; outcome: 'failed' | 'indeterminate'; code: string; message: string }
            | { askError: string };
          if ('askError' in reply) {
            answers.push({ writer: w, q, key, value, outcome: 'no answer', code: reply.askError });
            return;
          }
          if (reply.ok) {
            answers.push({ writer: w, q, key, value, outcome: 'ok' });
            acked++;
            continue;
          }
          answers.push({
            writer: w,
            q,
            key,
            value,
            outcome: reply.outcome,
            code: `${reply.code}: ${reply.message}`,
          });
          return; // as a client would, it goes elsewhere after a refusal
        }
      };
      const writers = Array.from({ length: WRITERS }, (_, w) => writer(w));
      await until('writes under way', () => (acked >= 100 ? true : undefined), 60_000, 20);
      const before = acked;
      await procs.kill(leader, 'SIGTERM');
      const exitCode = procs.node(leader).child?.exitCode;
      await Promise.all(writers);
      t.comment(`${before} writes acknowledged before SIGTERM, ${acked} in all`);

      t.equal(exitCode, 0, 'the leader exits 0 after SIGTERM');
      const notOk = answers.filter((a) => a.outcome !== 'ok');
      t.same(
        notOk.filter((a) => a.outcome === 'indeterminate'),
        [],
        'no write is answered indeterminate (was SYNOD_ERR_KV_STOPPED)',
      );
      // A request that reached the node after its KV service stopped is refused by the actor
      // system itself (not handled: definitely not applied); anything else without an answer
      // (a timeout, the link dropping first) would leave its client not knowing.
      t.same(
        notOk.filter(
          (a) =>
            a.outcome === 'no answer' &&
            a.code !== 'SYNOD_ERR_ACTOR_STOPPED' &&
            a.code !== 'SYNOD_ERR_NO_SUCH_ACTOR',
        ),
        [],
        'every write the leader took is answered before it exits',
      );
      const refusals = notOk.filter((x) => x.outcome === 'failed');
      t.same(
        refusals.filter(
          (a) =>
            !/^SYNOD_ERR_KV_UNAVAILABLE: SYNOD_ERR_NODE_SHUTTING_DOWN: node \w+ is shutting down/.test(
              a.code ?? '',
            ),
        ),
        [],
        `the ${refusals.length} refused writes say the node is shutting down (not applied)`,
      );
      t.comment(
        `answers after SIGTERM: ${notOk.length} not ok (${refusals.length} refused by the drain, ${notOk.length - refusals.length} by the stopped service)`,
      );
      t.equal(notOk.length, WRITERS, 'each writer ended on one refusal, after the shutdown began');

      const logged = procs
        .node(leader)
        .output.split('\n')
        .flatMap((l) => {
          try {
            return [
              JSON.parse(l) as { msg?: string; inFlight?: number; left?: number; refused?: number },
            ];
          } catch {
            return [];
          }
        });
      const drained = logged.find((l) => /^shutdown: .*in-flight writes/.test(l.msg ?? ''));
      t.ok(drained, `the leader says what it finished: ${drained?.msg}`);
      t.equal(drained?.left, 0, 'nothing was left in flight');
      t.ok(
        (drained?.inFlight ?? 0) + (drained?.refused ?? 0) >= 1,
        'it had writes to finish or refuse (each writer always has one outstanding)',
      );
      t.ok(
        logged.some((l) => l.msg === 'stopped cleanly'),
        'and it stopped cleanly (log closed)',
      );
      if (protocol === 'raft') {
        // Leadership transfer on shutdown: after the drain, the leader hands over to the most
        // up-to-date voter and sees it lead before it closes. So the new leader did not come
        // from an election after a timeout (the old one would not have seen it): it is the
        // transfer's target, leading the very next term.
        const msgs = logged.map((l) => l.msg ?? '');
        const at = msgs.findIndex((m) => /^shutdown: handed leadership to /.test(m));
        const handed = logged[at] as
          | { to?: string; fromTerm?: number; toTerm?: number }
          | undefined;
        t.ok(handed, `the leader handed its leadership over: ${msgs[at]}`);
        t.ok(at >= 0 && at < msgs.indexOf('stopped cleanly'), 'before the log was closed');
        t.not(handed?.to, leader, 'to another node');
        t.equal(
          handed?.toTerm,
          (handed?.fromTerm ?? 0) + 1,
          'which leads the next term (term + 1)',
        );
        // The client's link to that node may still be coming up (the loaded machine of a full
        // `npm test`: one ask failed there): wait for its first answer, then check it.
        const now = (await until(
          `an answer from ${handed?.to}`,
          () =>
            c1.system
              .ask(`${handed?.to}/admin`, { type: 'node.status' } as never, 5000)
              .catch(() => undefined),
          30_000,
        ).catch(() => undefined)) as { role?: string; term?: number } | undefined;
        t.match(
          now,
          { role: 'leader', term: handed?.toTerm },
          `${handed?.to} leads in term ${handed?.toTerm}`,
        );
      }
      await c1.disconnect();

      // Stop the rest cleanly, restart all three from their data directories, read everything back.
      for (const id of procs.nodes.keys()) if (id !== leader) await procs.kill(id, 'SIGTERM');
      for (const id of procs.nodes.keys())
        t.equal(procs.node(id).child?.exitCode, 0, `${id} stopped with exit code 0`);
      procs.startAll(() => args);
      const c2 = await client();
      t.teardown(() => c2.disconnect());
      const ok = answers.filter((a) => a.outcome === 'ok');
      const missing: string[] = [];
      for (let i = 0; i < ok.length; i += 50) {
        const batch = ok.slice(i, i + 50);
        const reads = await Promise.all(batch.map((a) => c2.get(a.key, { level: 'strong' })));
        for (const [j, r] of reads.entries()) {
          const a = batch[j] as Answer;
          if (r.outcome !== 'ok' || r.value.value !== a.value)
            missing.push(`${a.key}: ${r.outcome === 'ok' ? r.value.value : r.error.code}`);
        }
      }
      t.same(
        missing.slice(0, 5),
        [],
        `all ${ok.length} acknowledged writes read back after the restart`,
      );
    },
  );
