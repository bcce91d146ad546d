import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { leaderOf, load, startCluster, stopCluster } from '../bench/raft.js';
const clients = Number(process.argv[2] ?? 256);
const secs = Number(process.argv[3] ?? 4);
const prof = process.argv[4];
const c = await startCluster(1);
await leaderOf(c);
await new Promise((r) => setTimeout(r, 200));
await load(c, clients, 1); // warm up
const s = new Session();
if (prof) { s.connect(); await s.post('Profiler.enable'); await s.post('Profiler.start'); }
const cpu0 = process.cpuUsage();
const r = await load(c, clients, secs);
const cpu = process.cpuUsage(cpu0);
if (prof) { const { profile } = await s.post('Profiler.stop'); writeFileSync(prof, JSON.stringify(profile)); }
const writes = r.rate * secs;
console.log(clients, 'clients', Math.round(r.rate), 'writes/s', ((cpu.user + cpu.system) / writes).toFixed(2), 'cpu-us/write', 'msgs', c.network.counters.sent);
await stopCluster(c);
process.exit(0);
