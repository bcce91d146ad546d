/**
 * One `@markwylde/liferaft` node as a process, for the benchmark's JavaScript-peer comparison.
 * liferaft ships no transport and no client protocol, so this file supplies the smallest fair
 * ones: peers talk JSON over WebSockets (`ws`, as Synod does), requests carry an id and the
 * peer's reply comes back on the same connection; a client sends `{t:'put', id, key, value}` and
 * is answered when liferaft emits `commit` for that command (a majority stored it), or at once
 * with `{ok:false, leader}` when this node is not the leader.
 *
 * Two things a user of liferaft has to do, done here: commands are submitted one at a time
 * (liferaft's `saveCommand` reads the last index and then writes index+1, so two concurrent
 * `command()` calls take the same index and one overwrites the other), and the log lives in
 * LevelDB through leveldown (liferaft's default `Log`), whose writes are not synced to disk.
 *
 * Usage: node --import tsx bench/lib/liferaft-node.ts <liferaft dir> <id> <port> <data dir>
 *        <peer port>,<peer port>
 * Prints `ready` once listening and `leader <id> term <n>` whenever it becomes the leader.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import { WebSocket, WebSocketServer } from 'ws';

type Packet = Record<string, unknown>;
type Reply = (err?: unknown, data?: Packet) => void;

interface LifeRaftInstance {
  address: string;
  state: number;
  term: number;
  leader: string;
  log: unknown;
  nodes: unknown[];
  on(event: string, fn: (...args: never[]) => void): void;
  emit(event: string, ...args: unknown[]): void;
  join(address: string, write: (packet: Packet, reply: Reply) => void): unknown;
  command(command: unknown): Promise<void>;
}
type LifeRaftClass = (new (
  address: string,
  options: Record<string, unknown>,
) => LifeRaftInstance) & { LEADER: number };

const [dir, id, portText, dataDir, peerText] = process.argv.slice(2);
if (!dir || !id || !portText || !dataDir || peerText === undefined) {
  console.error('usage: liferaft-node <liferaft dir> <id> <port> <data dir> <peer ports>');
  process.exit(2);
}
const require = createRequire(path.join(dir, 'node_modules', 'index.js'));
const LifeRaft = require('@markwylde/liferaft') as LifeRaftClass;
const LifeRaftLog = require('@markwylde/liferaft/log') as unknown;

const port = Number(portText);
const address = `ws://127.0.0.1:${port}`;
const peers = peerText
  .split(',')
  .filter(Boolean)
  .map((p) => `ws://127.0.0.1:${p}`);

/** Outgoing connection to one peer, with request ids for the replies. */
class PeerLink {
  private ws: WebSocket | undefined;
  private next = 1;
  private readonly waiting = new Map<number, Reply>();
  constructor(private readonly url: string) {}
  send(packet: Packet, reply: Reply): void {
    const ws = this.connect();
    if (ws.readyState !== WebSocket.OPEN) {
      reply(new Error(`${this.url} not connected`));
      return;
    }
    const rid = this.next++;
    this.waiting.set(rid, reply);
    ws.send(JSON.stringify({ t: 'rpc', rid, packet }));
  }
  private connect(): WebSocket {
    if (this.ws && this.ws.readyState <= WebSocket.OPEN) return this.ws;
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.on('message', (buf) => {
      const m = JSON.parse(String(buf)) as { rid: number; packet?: Packet };
      const w = this.waiting.get(m.rid);
      if (!w) return;
      this.waiting.delete(m.rid);
      w(undefined, m.packet);
    });
    const fail = (): void => {
      for (const w of this.waiting.values()) w(new Error(`${this.url} closed`));
      this.waiting.clear();
    };
    ws.on('close', fail);
    ws.on('error', () => {});
    return ws;
  }
}

const raft = new LifeRaft(address, {
  Log: LifeRaftLog,
  path: path.join(dataDir, 'log'),
  // liferaft's defaults (heartbeat 50 ms, election 150–300 ms) are Synod's too.
});
raft.on('error', () => {});
for (const p of peers) {
  const link = new PeerLink(p);
  raft.join(p, (packet, reply) => link.send(packet, reply));
}

let lastLeaderTerm = -1;
raft.on('leader', () => {
  if (raft.term !== lastLeaderTerm) {
    lastLeaderTerm = raft.term;
    console.log(`leader ${id} term ${raft.term}`);
  }
});

/** Client requests waiting for their command's commit, by command id. */
const pending = new Map<string, (ok: boolean) => void>();
const state = new Map<string, string>();
raft.on('commit', ((command: { cid: string; key: string; value: string }) => {
  state.set(command.key, command.value);
  const done = pending.get(command.cid);
  if (done) {
    pending.delete(command.cid);
    done(true);
  }
}) as (...args: never[]) => void);

let queue: Promise<void> = Promise.resolve();
let rejections = 0;
let seq = 0;

const server = new WebSocketServer({ host: '127.0.0.1', port });
server.on('connection', (ws) => {
  ws.on('message', (buf) => {
    const m = JSON.parse(String(buf)) as {
      t: string;
      rid?: number;
      id?: number;
      packet?: Packet;
      key?: string;
      value?: string;
    };
    if (m.t === 'rpc') {
      raft.emit('data', m.packet, (packet?: Packet) => {
        if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ rid: m.rid, packet }));
      });
    } else if (m.t === 'put') {
      const answer = (ok: boolean, error?: string): void => {
        if (ws.readyState === WebSocket.OPEN)
          ws.send(JSON.stringify({ id: m.id, ok, error, leader: raft.leader }));
      };
      if (raft.state !== LifeRaft.LEADER) {
        answer(false, 'NOTLEADER');
        return;
      }
      const cid = `${id}-${++seq}`;
      pending.set(cid, (ok) => answer(ok));
      queue = queue
        .then(() => raft.command({ cid, key: m.key, value: m.value }))
        .catch((err: Error) => {
          pending.delete(cid);
          answer(false, err.message);
        });
    } else if (m.t === 'status') {
      ws.send(
        JSON.stringify({
          id: m.id,
          ok: true,
          leader: raft.state === LifeRaft.LEADER,
          term: raft.term,
          rejections,
        }),
      );
    }
  });
  ws.on('error', () => {});
});
server.on('listening', () => console.log('ready'));
process.on('SIGTERM', () => process.exit(0));
// liferaft's follower path rejects with LevelDB's NotFoundError when an append arrives before
// the entry it follows (seen within seconds at one client); unhandled, that ends the process.
// A user would keep the node up and log it, so this does, and counts them for the report.
process.on('unhandledRejection', (err) => {
  rejections++;
  if (rejections <= 3 || rejections % 1000 === 0)
    console.log(`unhandled rejection ${rejections}: ${(err as Error).message}`);
});
