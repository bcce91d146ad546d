/**
 * `synod demo`: the embedded tour. Until the Raft cluster tour lands this runs the
 * custom-actor demo (a rate limiter) so the command always shows something real.
 */
import { runRateLimiterDemo } from '../../demos/rate-limiter.js';

export const summary = 'run the in-process tour (see README)';

export async function run(argv: string[]): Promise<number> {
  if (argv.includes('--help')) {
    console.log('usage: synod demo\n\nRuns the in-process demo and exits when it is done.');
    return 0;
  }
  await runRateLimiterDemo({ seconds: 1 });
  return 0;
}
