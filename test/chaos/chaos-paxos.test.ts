/**
 * The chaos run of chaos.test.ts with `synod node --protocol paxos`. Skips, saying so, while
 * the node refuses that protocol.
 */
import { chaosTest } from './harness/ci.js';

chaosTest('paxos');
