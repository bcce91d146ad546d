/** Parent side of test/helpers/ws-node-proc.ts: start, drive, observe and kill node processes. */
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const script = path.join(here, 'ws-node-proc.ts');

export { freePort } from './node-processes.js';

type Msg = { ev: string; [k: string]: unknown };

export class NodeProc {
  child!: ChildProcess;
  incarnation = '';
  readonly links = new Map<string, { state: string; incarnation?: string }>();
  /** received[from][tag] = list of i in arrival order */
  readonly received = new Map<string, Map<string, number[]>>();
  private waiters: { pred: () => boolean; resolve: () => void }[] = [];

  constructor(
    readonly id: string,
    readonly port: number,
    readonly peers: string[],
  ) {}

  start(): Promise<void> {
    this.links.clear();
    this.received.clear();
    this.child = fork(script, [this.id, String(this.port), JSON.stringify(this.peers)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: Msg) => this.onMessage(m));
    return this.until(() => this.incarnation !== '' && this.child.connected, 30_000, 'ready').then(
      () => undefined,
    );
  }

  private onMessage(m: Msg): void {
    if (m.ev === 'ready') this.incarnation = m.incarnation as string;
    else if (m.ev === 'link') {
      const s: { state: string; incarnation?: string } = { state: m.state as string };
      if (m.incarnation !== undefined) s.incarnation = m.incarnation as string;
      this.links.set(m.peer as string, s);
    } else if (m.ev === 'recv') {
      const from = m.from as string;
      let byTag = this.received.get(from);
      if (!byTag) {
        byTag = new Map();
        this.received.set(from, byTag);
      }
      let list = byTag.get(m.tag as string);
      if (!list) {
        list = [];
        byTag.set(m.tag as string, list);
      }
      list.push(m.i as number);
    }
    for (const w of [...this.waiters]) {
      if (w.pred()) {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        w.resolve();
      }
    }
  }

  /** Resolves when `pred` holds (checked on every message from the child), or rejects. */
  until(pred: () => boolean, ms: number, what: string): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done);
        reject(new Error(`${this.id}: timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const done = () => {
        clearTimeout(timer);
        resolve();
      };
      this.waiters.push({ pred, resolve: done });
    });
  }

  linkUp(peer: string, incarnation?: string): boolean {
    const s = this.links.get(peer);
    return s?.state === 'up' && (incarnation === undefined || s.incarnation === incarnation);
  }

  got(from: string, tag: string): number[] {
    return this.received.get(from)?.get(tag) ?? [];
  }

  send(to: string, tag: string, count: number): void {
    this.child.send({ cmd: 'send', to, tag, count });
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    return new Promise((resolve) => {
      if (this.child.exitCode !== null || this.child.signalCode !== null) return resolve();
      this.child.once('exit', () => resolve());
      this.child.kill(signal);
    });
  }
}
