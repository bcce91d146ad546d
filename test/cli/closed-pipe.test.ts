// `synod … | head -1`: when the reader closes the pipe early, the command ends quietly with its
// exit code instead of crashing with an EPIPE stack trace.
import { spawn } from 'node:child_process';
import t from 'tap';
import { SYNOD_CLI } from '../helpers/node-processes.js';

t.test('output into a pipe closed by its reader: exit 0, no stack trace', async (t) => {
  // `help` prints its command list after loading every command module, long after the read
  // end below is closed, so the write meets a closed pipe.
  const child = spawn(process.execPath, [...SYNOD_CLI, 'help'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.destroy();
  let stderr = '';
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  t.equal(code, 0, 'exit code 0');
  t.notMatch(stderr, /EPIPE|Error/, `nothing on stderr: ${stderr.slice(0, 300)}`);
});
