/**
 * Jepsen-style run of five real `synod node` processes (Raft) in network namespaces: seeded
 * kills, pauses, partitions, loss and slow links while clients run read/write/cas; the history
 * must be linearizable, no acknowledged write lost, writes served after healing, memory
 * bounded. Default 45 s of workload (2-3 minutes of wall time on a loaded machine): SYNOD_CHAOS_MINUTES=3
 * for the CI length (then run tap with --timeout=900). Multi-Paxos is in
 * chaos-paxos.test.ts, one file per protocol so each fits tap's per-file timeout.
 */
import { chaosTest } from './harness/ci.js';

chaosTest('raft');
