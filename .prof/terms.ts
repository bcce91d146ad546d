import { LocalCluster } from '../lib/cluster/local-cluster.js';
const out: string[] = [];
for (let i = 0; i < 8; i++) {
  const c = new LocalCluster<unknown, unknown>({ nodes: ['n1', 'n2', 'n3'], seed: i + 1, stateMachine: () => ({ apply: () => null, snapshot: () => new Uint8Array(), restore: () => {} }) });
  await c.start();
  const l1 = await c.waitForLeader(10000);
  const t1 = c.raft(l1)!.status().term;
  await c.stop(l1);
  const l2 = await c.waitForLeader(10000, t1 + 1);
  const t2 = c.raft(l2)!.status().term;
  await c.restart(l1);
  await new Promise((r) => setTimeout(r, 500));
  const l3 = c.leader()!;
  out.push(`${t1}->${t2}->${c.raft(l3)!.status().term}`);
  await c.shutdown();
}
console.log(out.join('  '));
process.exit(0);
