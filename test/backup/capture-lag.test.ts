/**
 * A full backup's capture is synchronous: while it runs nothing is received, so entries that
 * arrive meanwhile are stamped later than their commit by up to the capture's length. Session
 * 14's reviewer (F1) showed that a time restore could then come out earlier than the cluster's
 * state, silently, with those entries still archived as `observed`. A capture longer than
 * CAPTURE_LAG_MS now switches the agent to `caught-up` (its times are upper bounds) until the
 * driver sees it keep up again; a short one changes nothing.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Test } from 'tap';
import t from 'tap';
import { CAPTURE_LAG_MS } from '../../actors/backup/agent.js';
import { Repository } from '../../actors/backup/repository.js';
import { MapState } from '../../actors/backup/state.js';
import { SystemClock } from '../../lib/clock.js';
import { applyPuts, startMapAgent } from '../helpers/backup-agent.js';

/** The wall clock jumps by `captureMs` while a capture walks the state. */
class JumpingClock extends SystemClock {
  extra = 0;
  override wallNow(): number {
    return super.wallNow() + this.extra;
  }
}

async function run(t: Test, captureMs: number) {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'synod-capture-lag-'));
  t.teardown(() => rm(dir, { recursive: true, force: true }));
  const repo = await Repository.init(dir, { clusterId: 'c1' });
  const clock = new JumpingClock();
  class SlowMapState extends MapState {
    override entries() {
      clock.extra += captureMs;
      return super.entries();
    }
  }
  const { agent } = await startMapAgent(t, repo, {
    seed: 3,
    archive: { flushMs: 0 },
    clock,
    factory: () => new SlowMapState(),
  });
  const events: { type: string; reason?: string }[] = [];
  agent.events$.subscribe((e) => events.push(e as unknown as { type: string; reason?: string }));
  agent.tell({ type: 'live' });
  const apply = (from: number, to: number) =>
    applyPuts(
      agent,
      from,
      to,
      (i) => `k${i}`,
      () => Buffer.from('v'),
    );
  apply(1, 10);
  await agent.ask({ type: 'backup', kind: 'full' }, 30_000);
  apply(11, 20);
  await agent.ask({ type: 'flush' }, 30_000);
  const timing = new Map<number, string>();
  for (const s of await repo.archive.list())
    for (const e of await repo.archive.read(s)) timing.set(e.index, e.timing as string);
  return { timing, events };
}

t.test(
  'a capture longer than CAPTURE_LAG_MS: later entries are archived as caught up',
  async (t) => {
    const { timing, events } = await run(t, CAPTURE_LAG_MS + 500);
    t.same([timing.get(1), timing.get(10)], ['observed', 'observed'], 'before it, live');
    t.same([timing.get(11), timing.get(20)], ['caught-up', 'caught-up'], 'after it, caught up');
    const e = events.find((x) => x.type === 'catching-up');
    t.match(e?.reason, /the full backup's capture took \d+ ms/, 'and the agent says why');
  },
);

t.test('a short capture changes nothing', async (t) => {
  const { timing, events } = await run(t, 0);
  t.same([timing.get(11), timing.get(20)], ['observed', 'observed']);
  t.notOk(events.some((x) => x.type === 'catching-up'));
});
