/**
 * A dashboard port that is already taken: `synod demo --dashboard PORT` and `synod node
 * --dashboard PORT` say so in one line (exit 1, no stack trace); the demo's default port falls
 * back to a free one. Before, the WebSocket server re-emitted the listen error with nobody
 * listening and the process crashed with a stack trace.
 */
import { createServer, type Server } from 'node:net';
import path from 'node:path';
import t from 'tap';
import { runTour } from '../../demos/raft-kv-tour.js';
import { freePort, NodeProcesses, runSynod } from '../helpers/node-processes.js';

async function hold(port: number): Promise<Server> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(port, '127.0.0.1', () => r()));
  return s;
}

t.test('a dashboard port in use is one line, or a fallback port for the default', async (t) => {
  const port = await freePort();
  const held = await hold(port);
  t.teardown(() => held.close());

  const demo = await runSynod(['demo', '--dashboard', String(port)]);
  t.equal(demo.code, 1, 'synod demo --dashboard <taken>: exit 1');
  t.match(
    demo.err,
    new RegExp(
      `^synod: dashboard port ${port} on 127\\.0\\.0\\.1 is already in use: .*--dashboard`,
    ),
  );
  t.notMatch(demo.err, /\n\s+at |Unhandled/, 'no stack trace');

  const nodes = await NodeProcesses.create(['n1']);
  t.teardown(() => nodes.close());
  const node = await runSynod(
    [
      'node',
      '--id',
      'n1',
      '--listen',
      `127.0.0.1:${nodes.node('n1').port}`,
      '--data',
      path.join(nodes.dir, 'n1'),
      '--secret-file',
      nodes.secretFile,
      '--dashboard',
      String(port),
    ],
    60_000,
  );
  t.equal(node.code, 1, 'synod node --dashboard <taken>: exit 1');
  t.match(node.err, /synod: dashboard port \d+ on .* is already in use/, node.err.trim());
  t.notMatch(node.err, /\n\s+at |Unhandled/, 'no stack trace');

  let url: string | undefined;
  await runTour({
    dashboardPort: port,
    dashboardPortFallback: true,
    print: () => {},
    onReady: async (_cluster, dashboardUrl) => {
      url = dashboardUrl;
    },
  });
  t.ok(url, `the tour served its dashboard with the default port taken: ${url}`);
  t.notOk(url?.includes(`:${port}/`), 'on another port');
});
