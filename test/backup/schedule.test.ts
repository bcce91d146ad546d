import t from 'tap';
import { compileSchedule, nextDue, parseRule } from '../../actors/backup/schedule.js';

const at = (iso: string) => Date.parse(iso);
const iso = (ms: number) => new Date(ms).toISOString();

t.test('cron rules fire at the next matching minute (UTC)', async (t) => {
  t.equal(iso(parseRule('0 2 * * *').next(at('2026-11-27T06:07:00Z'))), '2026-11-28T02:00:00.000Z');
  t.equal(
    iso(parseRule('*/15 * * * *').next(at('2026-11-27T06:07:00Z'))),
    '2026-11-27T06:15:00.000Z',
  );
  t.equal(
    iso(parseRule('30 1 * * 0').next(at('2026-11-27T06:07:00Z'))),
    '2026-11-29T01:30:00.000Z',
    'Sunday',
  );
  t.equal(
    iso(parseRule('30 1 * * 7').next(at('2026-11-27T06:07:00Z'))),
    '2026-11-29T01:30:00.000Z',
    '7 is Sunday too',
  );
  t.equal(iso(parseRule('0 0 1 * *').next(at('2026-11-27T06:07:00Z'))), '2026-12-01T00:00:00.000Z');
  t.equal(
    iso(parseRule('0 0 29 2 *').next(at('2026-11-27T06:07:00Z'))),
    '2028-02-29T00:00:00.000Z',
    'leap day',
  );
  t.equal(
    iso(parseRule('0 12 1 * 1').next(at('2026-11-27T06:07:00Z'))),
    '2026-11-30T12:00:00.000Z',
    'dom or dow',
  );
  t.equal(
    iso(parseRule('10-50/20 3 * * *').next(at('2026-11-27T03:30:00Z'))),
    '2026-11-27T03:50:00.000Z',
  );
  t.equal(
    iso(parseRule('0 2 * * *').next(at('2026-11-28T02:00:00Z'))),
    '2026-11-29T02:00:00.000Z',
    'strictly after',
  );
  t.equal(
    iso(parseRule('@every 15m').next(at('2026-11-27T06:07:00Z'))),
    '2026-11-27T06:15:00.000Z',
  );
});

t.test('bad rules are clear errors', async (t) => {
  for (const bad of [
    '',
    '* * * *',
    '61 * * * *',
    '* * 0 * *',
    '*/0 * * * *',
    'x * * * *',
    '@every 0s',
    '@every 5w',
    '0 0 31 2 *',
  ]) {
    t.throws(
      () => parseRule(bad).next(0),
      { code: 'SYNOD_ERR_BACKUP_INVALID_ARGUMENT' },
      JSON.stringify(bad),
    );
  }
  t.throws(() => compileSchedule({}), { code: 'SYNOD_ERR_BACKUP_INVALID_ARGUMENT' });
});

t.test('when several types are due at once the largest wins', async (t) => {
  const s = compileSchedule({ full: '0 2 * * 0', diff: '0 2 * * *', incr: '0 * * * *' });
  const now = at('2026-11-28T01:30:00Z'); // Saturday
  t.same(nextDue(s, now), { time: at('2026-11-28T02:00:00Z'), type: 'diff' });
  t.same(nextDue(s, at('2026-11-28T02:00:00Z')), {
    time: at('2026-11-28T03:00:00Z'),
    type: 'incr',
  });
  t.same(nextDue(s, at('2026-11-29T01:59:00Z')), {
    time: at('2026-11-29T02:00:00Z'),
    type: 'full',
  });
});
