/**
 * Randomized simulation runs of RaftNode clusters, part 2 of 4: see random.test.ts.
 */
import t from 'tap';
import { randomRunPart } from '../../helpers/raft-random-part.js';

randomRunPart(t, 1);
