import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { runRandomSeed } from '../test/helpers/raft-random.js';
const n = Number(process.argv[2] ?? 5);
const s = new Session(); s.connect(); await s.post('Profiler.enable'); await s.post('Profiler.start');
const t0 = performance.now();
for (let seed = 1000; seed < 1000 + n; seed++) { const r = await runRandomSeed(seed, { nodes: seed % 3 === 0 ? 5 : 3 }); if (!r.ok) console.log(r); }
console.log('ms/seed', ((performance.now() - t0) / n).toFixed(0));
const { profile } = await s.post('Profiler.stop'); writeFileSync('/tmp/raftprof/sim.json', JSON.stringify(profile));
process.exit(0);
