/**
 * The load generator's targets: a Synod process cluster through its KV client, and an etcd
 * cluster through the `etcd3` npm client (the client a Node developer would use).
 */
import type { KvClientOptions } from '../../lib/kv-client/client.js';
import type { KvResponse } from '../../lib/kv-client/response.js';
import type { KvClientSet, KvTarget } from './loadgen.js';
import { cpuMsOf } from './procs.js';
import type { SynodProcessCluster } from './synod-cluster.js';

export class OpError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function check(r: KvResponse<unknown>): void {
  if (r.outcome !== 'ok') throw new OpError(r.error.code, r.error.message);
}

/** Synod through `lib/kv-client`: C clients (sessions) over one WebSocket actor system. */
export function synodTarget(
  cluster: SynodProcessCluster,
  name = 'synod',
  clientOptions: Pick<KvClientOptions, 'witnessReads'> = {},
): KvTarget {
  let leader: string | undefined;
  return {
    name,
    cpu() {
      const out: Record<string, number> = {};
      let f = 0;
      for (const id of cluster.ids) {
        const ms = cpuMsOf(cluster.pid(id));
        if (ms !== undefined) out[id === leader ? 'leader' : `follower ${++f}`] = ms;
      }
      return out;
    },
    async open(n: number): Promise<KvClientSet> {
      leader = (await cluster.waitForLeader(30_000)).id;
      const { clients, close } = await cluster.clients(n, {
        timeoutMs: 10_000,
        attemptTimeoutMs: 5_000,
        read: { level: 'strong' },
        ...clientOptions,
      });
      return {
        put: async (i, key, value) =>
          check(await (clients[i] as (typeof clients)[0]).put(key, value)),
        get: async (i, key) => check(await (clients[i] as (typeof clients)[0]).get(key)),
        close,
      };
    },
  };
}

/** etcd through `etcd3`: linearizable gets (the client's default), one client object per `perConn` clients. */
export function etcdTarget(
  endpoints: string[],
  name = 'etcd',
  perConn = 64,
  pids?: () => { leader?: number; followers: number[] },
): KvTarget {
  return {
    name,
    cpu() {
      const out: Record<string, number> = {};
      const p = pids?.();
      if (!p) return out;
      const l = cpuMsOf(p.leader);
      if (l !== undefined) out.leader = l;
      p.followers.forEach((pid, i) => {
        const ms = cpuMsOf(pid);
        if (ms !== undefined) out[`follower ${i + 1}`] = ms;
      });
      return out;
    },
    async open(n: number): Promise<KvClientSet> {
      const { Etcd3 } = await import('etcd3');
      const conns = Array.from({ length: Math.max(1, Math.ceil(n / perConn)) }, () => {
        return new Etcd3({ hosts: endpoints, dialTimeout: 5000 });
      });
      const of = (i: number) => conns[i % conns.length] as InstanceType<typeof Etcd3>;
      return {
        put: async (i, key, value) => {
          await of(i).put(key).value(value).exec();
        },
        get: async (i, key) => {
          await of(i).get(key).string();
        },
        close: async () => {
          for (const c of conns) c.close();
        },
      };
    },
  };
}
