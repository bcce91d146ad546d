/**
 * Jepsen-style run of five real `synod node` processes (Raft) in network namespaces: seeded
 * kills, pauses, partitions, loss and slow links while clients run read/write/cas; the history
 * must be linearizable, no acknowledged write lost, writes served after healing, memory
 * bounded. Default 3 minutes of workload, the CI length (4-5 minutes of wall time;
 * tap's per-file timeout is 600 s in package.json); SYNOD_CHAOS_MINUTES sets another length.
 * Multi-Paxos is in chaos-paxos.test.ts, one file per protocol so each fits that timeout.
 */
import { chaosTest } from './harness/ci.js';

chaosTest('raft');
