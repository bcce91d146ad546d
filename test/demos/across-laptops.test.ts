import { readFileSync } from 'node:fs';
import t from 'tap';
import { guideCommands, runAcrossLaptops } from '../../demos/across-laptops.js';
import { freePort, SYNOD_CLI } from '../helpers/node-processes.js';

t.test(
  "the README's across-laptops guide is the demo's commands with real addresses",
  async (t) => {
    const readme = readFileSync('README.md', 'utf8');
    const section = readme
      .split(/^## /m)
      .find((s) => s.startsWith('A real cluster, across laptops'));
    t.ok(section, 'the README has the guide');
    const block = /```sh\n([\s\S]*?)```/.exec(section ?? '')?.[1] ?? '';
    // Join continuation lines and drop comments, as a shell would read them.
    const lines = block
      .replace(/\\\n\s*/g, '')
      .split('\n')
      .map((l) => l.replace(/\s+#.*$/, '').trim())
      .filter((l) => l && !l.startsWith('#'));
    const machines = ['a', 'b', 'c'].map((id, i) => ({
      id,
      listen: '0.0.0.0:7001',
      address: `10.0.0.${i + 1}:7001`,
    }));
    const joiner = { id: 'd', listen: '0.0.0.0:7001', address: '10.0.0.4:7001' };
    const cmds = guideCommands(machines, joiner, './cluster.key');
    for (const cmd of [cmds.nodes[0], cmds.status, cmds.put, cmds.join])
      t.ok(lines.includes(cmd as string), `README has: ${cmd}`);
  },
);

t.test('the demo forms a cluster of three, writes, and a fourth node joins', async (t) => {
  const ports = [await freePort(), await freePort(), await freePort(), await freePort()];
  const lines: string[] = [];
  const r = await runAcrossLaptops({
    ports,
    synod: SYNOD_CLI,
    print: (l) => lines.push(l),
    timeoutMs: 90_000,
  });
  const out = lines.join('\n');
  t.match(out, /\$ npx synod node --id a --listen 127\.0\.0\.1:/, 'prints the node commands');
  t.match(out, /\$ npx synod kv put greeting hello/, 'prints the put');
  t.ok(['a', 'b', 'c'].includes(r.leader), `a founding member led (${r.leader})`);
  t.same([...r.members].sort(), ['a', 'b', 'c', 'd'], 'four voters after the join');
});
