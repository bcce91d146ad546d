/**
 * Jepsen-style runs of five real `synod node` processes per protocol (Raft and Multi-Paxos,
 * at the same time) in network namespaces: seeded kills, pauses, partitions, loss and slow
 * links while clients run read/write/cas; each history must be linearizable, no acknowledged
 * write lost, writes served after healing, memory bounded. Default 3 minutes of workload, the
 * issue's CI length (about 4-5 minutes of wall time; tap's per-file timeout is 600 s in
 * package.json); SYNOD_CHAOS_MINUTES sets another length, SYNOD_CHAOS_PROTOCOLS=raft one
 * protocol.
 */
import { chaosTests } from './harness/ci.js';

chaosTests((process.env.SYNOD_CHAOS_PROTOCOLS ?? 'raft,paxos').split(','));
