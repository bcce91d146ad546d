/**
 * A Synod node in its own process, for multi-process tests and the benchmark. Started with
 * `node --import tsx test/helpers/ws-node-proc.ts <nodeId> <port> <peers-json> [secret]` via
 * `fork`; talks to the parent over IPC:
 *   parent -> child  { cmd: 'send', to, tag, count }   { cmd: 'exit' }
 *   child -> parent  { ev: 'ready', port, incarnation } { ev: 'link', peer, state, incarnation }
 *                    { ev: 'recv', from, tag, i }       { ev: 'sent', tag, accepted }
 */
import { PROTOCOL_VERSION } from '../../lib/envelope.js';
import { Random } from '../../lib/random.js';
import { WebSocketTransport } from '../../transports/websocket/transport.js';

const [nodeId, portText, peersJson, secret] = process.argv.slice(2);
const send = (msg: unknown) => process.send?.(msg);

const t = new WebSocketTransport({
  nodeId: nodeId as string,
  listen: { host: '127.0.0.1', port: Number(portText) },
  peers: JSON.parse(peersJson ?? '[]') as string[],
  ...(secret ? { secret } : {}),
  random: new Random(process.pid),
  heartbeatIntervalMs: 250,
  heartbeatTimeoutMs: 1500,
  backoff: { initialMs: 50, maxMs: 500 },
  logger: {
    log(level, message) {
      if (process.env.SYNOD_TEST_LOG) process.stderr.write(`[${nodeId}] ${level} ${message}\n`);
    },
  },
});
t.links$.subscribe((s) =>
  send({ ev: 'link', peer: s.peer, state: s.state, incarnation: s.incarnation }),
);
t.inbound$.subscribe((e) => {
  const m = e.m as { tag: string; i: number };
  send({ ev: 'recv', from: e.from?.split('/')[0], tag: m.tag, i: m.i });
});
process.on('message', (msg: { cmd: string; to?: string; tag?: string; count?: number }) => {
  if (msg.cmd === 'send') {
    let accepted = 0;
    for (let i = 0; i < (msg.count ?? 0); i++) {
      const ok = t.send({
        v: PROTOCOL_VERSION,
        k: 'tell',
        to: `${msg.to}/sink`,
        from: `${nodeId}/src`,
        m: { tag: msg.tag, i },
      });
      if (ok) accepted++;
    }
    send({ ev: 'sent', tag: msg.tag, to: msg.to, accepted });
  } else if (msg.cmd === 'exit') {
    void t.close().then(() => process.exit(0));
  }
});
await t.start();
send({ ev: 'ready', port: t.address()?.port, incarnation: t.incarnation });
