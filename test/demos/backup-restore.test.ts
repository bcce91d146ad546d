/**
 * `npx tsx demos/backup-restore.ts` as a user runs it: one command, exit code 0, and the
 * narration shows the backups, the accident, the restore plan (backup chain + archived
 * entries) and a new cluster whose every key matches the state before the accident.
 */
import { spawnSync } from 'node:child_process';
import t from 'tap';

t.test('the backup-restore demo restores every key into a new cluster', async (t) => {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'demos/backup-restore.ts'], {
    encoding: 'utf8',
    timeout: 300_000,
  });
  t.equal(r.status, 0, `exit code 0 (stderr: ${r.stderr})`);
  t.match(r.stdout, /full backup \S+F at index \d+/);
  t.match(r.stdout, /incremental backup \S+I: \d+ records/);
  t.match(r.stdout, /verify: OK/);
  const plan = /plan: backup chain \S+ → \S+ \+ (\d+) archived entries/.exec(r.stdout);
  t.ok(plan, 'the plan names the chain');
  t.ok(Number(plan?.[1]) > 0, 'the restore replays archived entries after the last backup');
  t.match(r.stdout, /100 profiles are back/);
  const done = /done: (\d+) keys checked, (\d+) mismatches/.exec(r.stdout);
  t.ok(done, 'the summary line is printed');
  t.ok(Number(done?.[1]) >= 100, 'every profile was checked');
  t.equal(Number(done?.[2]), 0, 'no key differs');
});
