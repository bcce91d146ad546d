/**
 * A Multi-Paxos leader core's options for the unit tests: proposer `P` (peer `P2`), acceptors
 * A, B and C (majority quorums), learners `L` (local) and `L2`, a 50 ms heartbeat, a 300 ms
 * election timeout, a window of 4.
 */
import type { MultiLeaderOptions } from '../../actors/paxos/multi-leader.js';
import { majorityQuorums } from '../../actors/paxos/quorum.js';
import { Random } from '../../lib/random.js';

export const acceptors = ['A', 'B', 'C'];

export const leaderOptions = (over: Partial<MultiLeaderOptions> = {}): MultiLeaderOptions => ({
  id: 'P',
  quorums: majorityQuorums(acceptors),
  proposers: ['P', 'P2'],
  learners: ['L', 'L2'],
  localLearner: 'L',
  random: new Random(3),
  heartbeatMs: 50,
  electionTimeoutMs: 300,
  window: 4,
  maxBatch: 64,
  retransmitMs: 100,
  ...over,
});
