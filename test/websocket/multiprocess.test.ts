/**
 * Three node processes on loopback exchange messages; one is SIGKILLed and restarted on the
 * same port (a new incarnation); the others reconnect and traffic resumes. Every wait has an
 * upper bound and ends on an event from a child, never on a sleep.
 */
import t from 'tap';
import { freePort, NodeProc } from '../helpers/ws-proc.js';

const IDS = ['a', 'b', 'c'];
const N = 200;

t.test('three processes, one SIGKILLed and restarted', async (t) => {
  const ports = await Promise.all(IDS.map(() => freePort()));
  const url = (i: number) => `${IDS[i]}=ws://127.0.0.1:${ports[i]}`;
  const nodes = IDS.map(
    (id, i) =>
      new NodeProc(
        id,
        ports[i]!,
        IDS.flatMap((_, j) => (j === i ? [] : [url(j)])),
      ),
  );
  t.teardown(() => Promise.all(nodes.map((n) => n.kill())).then(() => undefined));
  await Promise.all(nodes.map((n) => n.start()));
  const [a, b, c] = nodes as [NodeProc, NodeProc, NodeProc];
  const others = (n: NodeProc) => nodes.filter((o) => o !== n);
  const allUp = (what: string) =>
    Promise.all(
      nodes.map((n) =>
        n.until(() => others(n).every((o) => n.linkUp(o.id, o.incarnation)), 30_000, what),
      ),
    );
  const exchange = async (tag: string) => {
    for (const n of nodes) for (const o of others(n)) n.send(o.id, tag, N);
    await Promise.all(
      nodes.map((n) =>
        n.until(
          () => others(n).every((o) => n.got(o.id, tag).length >= N),
          30_000,
          `${tag} traffic`,
        ),
      ),
    );
    for (const n of nodes) {
      for (const o of others(n)) {
        t.same(
          n.got(o.id, tag),
          Array.from({ length: N }, (_, i) => i),
          `${o.id}->${n.id} ${tag}: all, in order`,
        );
      }
    }
  };

  await allUp('initial links');
  t.pass('all six links up');
  await exchange('before');

  const oldInc = c.incarnation;
  await c.kill('SIGKILL');
  await Promise.all(
    [a, b].map((n) => n.until(() => !n.linkUp('c'), 30_000, 'c seen down after SIGKILL')),
  );
  t.pass('a and b see c go down');
  // traffic to a dead node is queued (bounded) or dead-lettered, never a crash
  a.send('c', 'while-dead', 10);

  c.incarnation = '';
  await c.start();
  t.not(c.incarnation, oldInc, 'restarted c has a new incarnation');
  await allUp('links after restart');
  t.ok(
    a.linkUp('c', c.incarnation) && b.linkUp('c', c.incarnation),
    'a and b reconnected to the new c',
  );
  await exchange('after');
  t.ok(a.child.exitCode === null && b.child.exitCode === null, 'a and b never exited');
});
