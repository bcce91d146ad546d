// Tried as a new user would: clone the repository into a temporary directory, run the two
// set-up commands exactly as README.md states them, and check that the demo reaches the end
// of its tour and that the test suite passes. This runs the whole suite a second time, so it
// is not part of `npm test`; `npm run test:readme` runs it, and `.ci/run` runs that.
//
// In CI the suite has just run on CI's own clean checkout of the same commit, and running it
// twice would take CI past its 30-minute budget. `.ci/run` therefore hands this test the
// result of that run (SYNOD_README_SUITE_EXIT and SYNOD_README_SUITE_SUMMARY); the test then
// checks that the clone is the same commit as that clean checkout and that the README's test
// command is the one CI ran (`npm test`), instead of running the suite again.
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import t from 'tap';

const root = path.resolve(import.meta.dirname, '../..');

/** The commands of the README's "Set-up: two commands" block, comments stripped. */
function setupCommands(readme: string): string[] {
  const section = readme.split(/^## /m).find((s) => s.startsWith('Set-up'));
  if (!section) throw new Error('README.md has no "## Set-up" section');
  const block = /```sh\n([\s\S]*?)```/.exec(section);
  if (!block?.[1]) throw new Error('the README set-up section has no ```sh block');
  return block[1]
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l.length > 0 && !l.startsWith('#'));
}

function sh(command: string, cwd: string): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const env: NodeJS.ProcessEnv = { ...process.env, CI: '1' };
    // The inner run must be the plain README command, not this test again.
    delete env.SYNOD_README_TEST;
    for (const k of Object.keys(env)) if (k.startsWith('TAP')) delete env[k];
    const child = spawn('bash', ['-c', command], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    const keep = (b: Buffer) => {
      output += b.toString();
      // Enough to report a failure; the suite's own output can be long.
      if (output.length > 4_000_000) output = output.slice(-2_000_000);
    };
    child.stdout.on('data', keep);
    child.stderr.on('data', keep);
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? 1, output }));
  });
}

const commands = setupCommands(readFileSync(path.join(root, 'README.md'), 'utf8'));

t.test('the README names exactly two set-up commands: install-and-demo, then test', async (t) => {
  t.equal(commands.length, 2, `commands: ${JSON.stringify(commands)}`);
  t.match(commands[0], /npm install/);
  t.match(commands[0], /synod demo/);
  t.equal(commands[1], 'npm test');
});

t.test(
  'a fresh clone: the README commands install, run the tour to its end, and pass the tests',
  { skip: process.env.SYNOD_README_TEST ? false : 'run with `npm run test:readme`' },
  async (t) => {
    const dir = mkdtempSync(path.join(tmpdir(), 'synod-readme-'));
    t.teardown(() => rmSync(dir, { recursive: true, force: true }));
    const clone = await sh(`git clone --quiet "${root}" "${dir}/synod"`, dir);
    t.equal(clone.code, 0, `git clone: ${clone.output}`);
    const cwd = path.join(dir, 'synod');

    const install = await sh(commands[0] as string, cwd);
    t.equal(install.code, 0, `"${commands[0]}" exits 0`);
    t.match(install.output, /Tour complete: \d+ writes, failover \d+ ms\./, 'the tour ends');
    if (install.code !== 0) t.comment(install.output.slice(-4000));

    const ciExit = process.env.SYNOD_README_SUITE_EXIT;
    let test: { code: number; output: string };
    if (ciExit !== undefined) {
      const head = (dir: string) =>
        sh('git rev-parse HEAD && git status --porcelain --untracked-files=no', dir);
      const [ours, theirs] = await Promise.all([head(root), head(cwd)]);
      t.equal(
        theirs.output,
        ours.output,
        'the clone is the same commit as the clean checkout CI tested, and both are clean',
      );
      t.equal(commands[1], 'npm test', 'the README test command is the one CI ran');
      test = { code: Number(ciExit), output: process.env.SYNOD_README_SUITE_SUMMARY ?? '' };
    } else {
      test = await sh(commands[1] as string, cwd);
    }
    const summary = /# \{ total: (\d+), pass: (\d+)(?:, fail: (\d+))?/.exec(test.output);
    t.equal(test.code, 0, `"${commands[1]}" exits 0`);
    t.ok(summary, 'tap printed its summary');
    if (summary) {
      t.ok(
        Number(summary[1]) > 1000,
        `${ciExit !== undefined ? 'CI ran' : 'the clone ran'} the whole suite (${summary[1]} tests)`,
      );
      t.equal(summary[3] ?? '0', '0', 'no test failed');
      t.comment(`clone's suite: ${summary[0]}`);
    }
    if (test.code !== 0) t.comment(test.output.slice(-6000));
  },
);
