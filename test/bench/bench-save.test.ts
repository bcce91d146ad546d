/**
 * `npm run bench` saves a report over the last run of its benchmark only when the run is whole
 * and `--no-save` was not given: a partial run (e.g. `paxos --process-only`) must not replace
 * the run of record in benchmarks/results and BENCHMARKS.md.
 */
import t from 'tap';
import { report } from '../../bench/harness.js';
import { notSavedBecause } from '../../scripts/bench.js';

t.test('whole runs are saved, partial and --no-save runs are not', async (t) => {
  const whole = report('x', []);
  t.equal(notSavedBecause(whole, false), undefined, 'a whole run is saved');
  t.match(notSavedBecause(whole, true), /--no-save/);
  const part = report('x', []);
  part.partial = '--process-only';
  t.match(notSavedBecause(part, false), /partial run \(--process-only\)/);
});
