/**
 * How loud a link going down is in the node's log: a client (a peer the node never dials,
 * like every `synod kv` or `synod status` run) that shuts down cleanly is routine (debug); a
 * configured peer going away is a warning.
 */
import t from 'tap';
import { linkUp, startNode, until, waitFor } from '../helpers/ws-util.js';

t.test('a client closing cleanly is debug; a configured peer going down is warn', async (t) => {
  const peer = await startNode('n2');
  const server = await startNode('n1', { peers: [`n2=${peer.url}`] }); // n1 dials n2
  const client = await startNode('kvc-client', { peers: [`n1=${server.url}`] });
  t.teardown(async () => {
    await server.t.close();
    await peer.t.close().catch(() => {});
  });
  await linkUp(server.t, 'kvc-client');
  await linkUp(server.t, 'n2');

  const clientDown = waitFor(
    server.t.links$,
    (s) => s.peer === 'kvc-client' && s.state === 'down',
    10_000,
    'client link down',
  );
  await client.t.close();
  await clientDown;
  await until(() => server.log.lines.some((l) => l.message.startsWith('link to kvc-client down')));
  const clientLine = server.log.lines.find((l) => l.message.startsWith('link to kvc-client down'));
  t.equal(clientLine?.level, 'debug', `a client that shut down: ${clientLine?.message}`);

  const peerDown = waitFor(
    server.t.links$,
    (s) => s.peer === 'n2' && s.state === 'down',
    10_000,
    'peer link down',
  );
  await peer.t.close();
  await peerDown;
  const peerLine = server.log.lines.find((l) => l.message.startsWith('link to n2 down'));
  t.equal(peerLine?.level, 'warn', `a configured peer that went away: ${peerLine?.message}`);
});
