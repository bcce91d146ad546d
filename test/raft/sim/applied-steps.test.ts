/**
 * `appliedSteps$`: every entry a node applies, commands or not, in log order with
 * consecutive indexes — what an observer that follows the log entry by entry (the backup
 * agent's learner) needs, where `applied$` carries commands only and `appliedIndex$` moves
 * once per batch.
 * SYNOD_SEED=N moves the base seed; a failed run prints the SYNOD_SIM_SEED that
 * replays it.
 */
import t from 'tap';
import { type AppliedStep, decodeCommand } from '../../../actors/raft/raft-node.js';
import { encodeValue } from '../../../lib/codec.js';
import { seedFromEnv } from '../../../lib/sim/simulation.js';
import { type KvOp, RaftCluster } from '../../helpers/raft-sim.js';

const SEED = seedFromEnv(71);

t.test('a joining learner sees every applied entry once, in order', async (t) => {
  const c = new RaftCluster({ seed: SEED, ids: ['a', 'b', 'c', 'l'], voters: ['a', 'b', 'c'] });
  await c.start();
  const steps: AppliedStep<KvOp, unknown>[] = [];
  const commands: number[] = [];
  const batches: number[] = [];
  const l = c.node('l');
  l.appliedSteps$.subscribe((s) => steps.push(s));
  l.applied$.subscribe((e) => commands.push(e.index));
  l.appliedIndex$.subscribe((i) => batches.push(i));

  const onLeader = async <T>(f: (id: string) => Promise<T>): Promise<T> => {
    for (;;) {
      const id = (await c.waitLeader(3000, ['a', 'b', 'c'])) as string;
      const r = await c.sim.await(
        c.within(f(id), 1000).then(
          (v) => ({ v }),
          () => undefined,
        ),
        { timeout: 1100 },
      );
      if (r) return r.v;
    }
  };
  await onLeader((id) => c.node(id).addLearner('l'));
  let seq = 0;
  const write = (v: number) =>
    onLeader((id) =>
      c.node(id).propose({ clientId: 'w', seq: ++seq, op: { f: 'write', k: 'k', v } }),
    );
  for (let i = 0; i < 10; i++) await write(i);
  // A leader change (its no-op), and an entry that is not a command (skipped alike).
  const old = (await c.waitLeader(1000, ['a', 'b', 'c'])) as string;
  c.partition([[old], ['a', 'b', 'c', 'l'].filter((x) => x !== old)]);
  await c.sim.runUntil(() => c.leaders().some((x) => x !== old && c.core(x)?.role === 'leader'), {
    timeout: 3000,
  });
  c.heal();
  const nl = (await c.waitLeader(3000, ['a', 'b', 'c'])) as string;
  c.core(nl)!.propose(encodeValue('not a command'));
  for (let i = 10; i < 15; i++) await write(i);
  await c.sim.runUntil(() => c.machines.get('l')?.data.get('k') === 14, { timeout: 3000 });

  // The node's applied index (the state machine's; the core's catches up at advance).
  const last = c.node('l').status().applied;
  t.same(
    steps.map((s) => s.index),
    Array.from({ length: last }, (_, i) => i + 1),
    `indexes 1..${last}, each once, in order`,
  );
  const types = new Set(steps.map((s) => s.type));
  t.same([...types].sort(), ['command', 'config', 'noop', 'skipped'], 'every kind of entry');
  t.same(
    steps.filter((s) => s.type === 'command').map((s) => s.index),
    commands,
    'the command steps are exactly applied$',
  );
  t.ok(
    steps.filter((s) => s.type === 'command').every((s) => s.entry?.index === s.index),
    'commands carry their applied entry',
  );
  // The backup agent archives these bytes instead of encoding each command again.
  t.ok(
    steps
      .filter((s) => s.type === 'command')
      .every(
        (s) =>
          s.entry?.data !== undefined &&
          JSON.stringify(decodeCommand(s.entry.data)) === JSON.stringify(s.entry.command),
      ),
    'commands carry the log bytes they were decoded from',
  );
  t.equal(steps.filter((s) => s.type === 'skipped').length, 1, 'the non-command entry');
  // Control: neither older stream alone can follow the log entry by entry.
  const gaps = (xs: number[]) => xs.some((x, i) => i > 0 && x !== (xs[i - 1] as number) + 1);
  t.ok(gaps(commands), 'applied$ alone has gaps (no-op, config, skipped entries)');
  t.ok(gaps(batches), 'appliedIndex$ moves once per batch');
});
