/**
 * A TCP proxy in front of a node's listener, so a test can cut one link the way a network
 * does: `blackhole()` stops forwarding without closing anything (only heartbeats can tell),
 * `heal()` destroys the frozen sockets and forwards new connections again.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';

export class TcpProxy {
  private server: Server;
  private pairs = new Set<{ client: Socket; upstream: Socket | undefined }>();
  private mode: 'pass' | 'blackhole' = 'pass';
  port = 0;

  constructor(private readonly targetPort: number) {
    this.server = createServer((client) => this.onClient(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as { port: number }).port;
    return this.port;
  }

  private onClient(client: Socket): void {
    client.on('error', () => {});
    const pair: { client: Socket; upstream: Socket | undefined } = { client, upstream: undefined };
    this.pairs.add(pair);
    client.on('close', () => {
      pair.upstream?.destroy();
      this.pairs.delete(pair);
    });
    if (this.mode === 'blackhole') {
      client.pause();
      return;
    }
    const upstream = connect(this.targetPort, '127.0.0.1');
    pair.upstream = upstream;
    upstream.on('error', () => {});
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  /** Stops forwarding in both directions; sockets stay open. */
  blackhole(): void {
    this.mode = 'blackhole';
    for (const { client, upstream } of this.pairs) {
      client.unpipe();
      upstream?.unpipe();
      client.pause();
      upstream?.pause();
    }
  }

  /** Forwards again: frozen connections are destroyed, new ones pass. */
  heal(): void {
    if (this.mode === 'pass') return;
    this.mode = 'pass';
    for (const p of [...this.pairs]) {
      p.client.destroy();
      p.upstream?.destroy();
    }
  }

  close(): Promise<void> {
    for (const p of this.pairs) {
      p.client.destroy();
      p.upstream?.destroy();
    }
    return new Promise((r) => this.server.close(() => r()));
  }
}
