/**
 * The `synod demo` tour (demos/raft-kv-tour.ts) end to end, and the dashboard controls it
 * offers once it is done: its steps in order, the two backups in the catalog, a third backup
 * taken from the dashboard (incremental), a restore of the latest state and of the first
 * backup, and a stop/restart of a node.
 */
import t from 'tap';
import { runTour } from '../../demos/raft-kv-tour.js';

t.test('the tour runs to its end and its backup/restore controls work', async (t) => {
  const lines: string[] = [];
  const controls: Record<string, { ok: boolean; message: string }> = {};
  let catalog: { id: string; type: string }[] = [];
  let running: string | undefined;
  let narration: string[] = [];
  const r = await runTour({
    print: (l) => lines.push(l),
    onReady: async (cluster) => {
      catalog = cluster.view().backups ?? [];
      const pending = cluster.control({ op: 'backup' });
      // While it runs, the page's event log says so (the view carries the narration).
      running = (cluster.view().narration ?? []).find((l) => /backup running/.test(l));
      controls.backup = await pending;
      narration = cluster.view().narration ?? [];
      controls.restoreLatest = await cluster.control({ op: 'restore' });
      controls.restoreFirst = await cluster.control({
        op: 'restore',
        backup: catalog[0]?.id ?? '',
      });
      controls.stop = await cluster.control({ op: 'stop', node: 'c' });
      controls.restart = await cluster.control({ op: 'restart', node: 'c' });
      catalog = cluster.view().backups ?? [];
    },
  });
  t.same(
    r.steps,
    [
      'Start three nodes and elect a leader',
      'Replicate writes',
      `Kill the leader (${r.firstLeader})`,
      `Bring ${r.firstLeader} back`,
      'Back up the cluster with the backup agent and restore it',
    ],
    'the steps in order',
  );
  t.not(r.secondLeader, r.firstLeader, 'another node took over');
  t.match(lines.join('\n'), /Tour complete: \d+ writes, failover \d+ ms\./);
  t.same(
    catalog.map((b) => b.type),
    ['full', 'incr', 'incr'],
    'the tour took a full and an incr; the dashboard control took another incr',
  );
  t.equal(controls.backup?.ok, true, String(controls.backup?.message));
  t.match(running, /^incr backup running/, `shown while it runs: ${running}`);
  t.ok(
    narration.indexOf(running as string) < narration.indexOf(String(controls.backup?.message)),
    'then its result',
  );
  t.match(
    String(controls.restoreLatest?.message),
    /restored the latest state \(index \d+, digest .* checked\)/,
  );
  t.equal(controls.restoreFirst?.ok, true, String(controls.restoreFirst?.message));
  t.equal(controls.stop?.ok, true, 'stop a node from the dashboard');
  t.equal(controls.restart?.ok, true, 'restart it');
});

t.test(
  '--pace: a pause before every step but the first, and a fifth of it between writes',
  async (t) => {
    const events: string[] = [];
    const r = await runTour({
      paceMs: 1500,
      print: (l) => {
        const m = /^\n== (\d+)\./.exec(l);
        if (m) events.push(`step ${m[1]}`);
      },
      // Recorded instead of waited: the pacing is checked, not the clock.
      pause: async (ms) => {
        events.push(`pause ${ms}`);
      },
    });
    t.equal(r.steps.length, 5);
    t.same(
      events,
      [
        'step 1',
        'pause 1500',
        'step 2',
        'pause 300',
        'pause 300',
        'pause 300',
        'pause 300',
        'pause 1500',
        'step 3',
        'pause 1500',
        'step 4',
        'pause 1500',
        'step 5',
      ],
      'pauses between steps and between the five writes',
    );
    await t.rejects(runTour({ paceMs: -1, print: () => {} }), RangeError, 'a negative pace');
  },
);

t.test('no pace by default: no pause at all', async (t) => {
  let pauses = 0;
  await runTour({
    print: () => {},
    pause: async () => {
      pauses++;
    },
  });
  t.equal(pauses, 0);
});
