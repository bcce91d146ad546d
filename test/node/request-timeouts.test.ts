/**
 * Finding F4: a client-supplied `timeoutMs` must never reach a timer unchecked (Node turns a
 * delay ≥ 2^31 ms into 1 ms with a TimeoutOverflowWarning; NaN never expires a proposal).
 * Checked on the client (KvClient options and per-call timeouts), in the KV service
 * (`kv.write.timeoutMs`) and in the Raft actor (`propose`/`readBarrier` messages), on a real
 * one-node cluster in this process, so any timer overflow would warn here.
 */
import t from 'tap';
import { MAX_TIMEOUT_MS, timeoutProblem } from '../../actors/kv/validate.js';
import { KvClient } from '../../lib/kv-client/client.js';
import { clientOf, startOneNode } from '../helpers/one-node.js';

const ABSURD: unknown[] = [
  2 ** 31,
  2 ** 40,
  Number.MAX_SAFE_INTEGER,
  Number.NaN,
  -5,
  0,
  'x',
  Infinity,
];

t.test('timeoutProblem: accepts (0, 2^31-1], refuses the rest with a reason', async (t) => {
  for (const ok of [1, 0.5, 5000, MAX_TIMEOUT_MS]) t.equal(timeoutProblem(ok), undefined, `${ok}`);
  for (const bad of ABSURD) t.type(timeoutProblem(bad), 'string', `${String(bad)} refused`);
  t.match(timeoutProblem(2 ** 40), /the limit is 2147483647 ms/);
});

t.test('client, KV service and Raft actor refuse absurd timeouts', async (t) => {
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  t.teardown(() => {
    process.off('warning', onWarning);
  });
  const one = await startOneNode(t, 'timeouts');
  const { system } = await clientOf(t, one, 'timeout-client');

  // Client options
  for (const bad of ABSURD) {
    t.throws(
      () => new KvClient({ system, nodes: ['n1'], timeoutMs: bad as number }),
      { name: 'KvError', code: 'SYNOD_ERR_KV_INVALID_ARGUMENT' },
      `new KvClient({timeoutMs: ${String(bad)}}) throws SYNOD_ERR_KV_INVALID_ARGUMENT`,
    );
  }
  t.throws(() => new KvClient({ system, nodes: ['n1'], attemptTimeoutMs: 2 ** 31 }), {
    code: 'SYNOD_ERR_KV_INVALID_ARGUMENT',
  });
  const kv = new KvClient({ system, nodes: ['n1'], timeoutMs: 5000 });
  // Per-call timeouts
  for (const bad of ABSURD) {
    const r = await kv.put('k', 'v', { timeoutMs: bad as number });
    t.same(
      r.outcome === 'ok' ? 'ok' : [r.outcome, r.error.code],
      ['failed', 'SYNOD_ERR_KV_INVALID_ARGUMENT'],
      `put with timeoutMs ${String(bad)}: failed, SYNOD_ERR_KV_INVALID_ARGUMENT`,
    );
  }
  t.equal((await kv.put('k', 'v', { timeoutMs: 3000 })).outcome, 'ok', 'a sane timeout works');

  // The service, asked directly (what a hostile or buggy client sends)
  let q = 0;
  for (const bad of ABSURD) {
    const r = (await system.ask(
      'n1/kv',
      {
        type: 'kv.write',
        op: { t: 'put', key: 'raw', value: 'v' },
        session: { c: 'raw-client', q: ++q, a: q - 1 },
        timeoutMs: bad,
      } as never,
      5000,
    )) as { ok: boolean; code?: string; outcome?: string; message?: string };
    t.same(
      [r.ok, r.code, r.outcome],
      [false, 'SYNOD_ERR_KV_INVALID_ARGUMENT', 'failed'],
      `kv.write with timeoutMs ${String(bad)} refused: ${r.message}`,
    );
  }

  // The Raft actor, asked directly
  for (const bad of ABSURD) {
    for (const msg of [
      {
        type: 'propose',
        command: { clientId: 'raw', seq: ++q, op: { t: 'put', key: 'r', value: 'v' } },
        timeoutMs: bad,
      },
      { type: 'readBarrier', timeoutMs: bad },
    ]) {
      const err = await system.ask('n1/raft', msg as never, 5000).then(
        () => undefined,
        (e: { code?: string; message?: string }) => e,
      );
      t.equal(
        err?.code,
        'SYNOD_ERR_RAFT_BAD_TIMEOUT',
        `${msg.type} with ${String(bad)}: ${err?.message}`,
      );
    }
  }
  const index = await system.ask(
    'n1/raft',
    { type: 'readBarrier', timeoutMs: 2000 } as never,
    5000,
  );
  t.type(index, 'number', 'a readBarrier with a sane timeout works');
  await new Promise((r) => setImmediate(r));
  t.same(
    warnings.filter((w) => /TimeoutOverflow/.test(w)),
    [],
    'no TimeoutOverflowWarning anywhere in the process',
  );
});
