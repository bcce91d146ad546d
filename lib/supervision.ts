/**
 * What happens when an actor's handler throws (or its promise rejects).
 *
 * - `restart` (default): the failing message is reported and dropped, the actor waits a
 *   backoff delay (exponential, with a cap), then continues with the rest of its mailbox.
 *   An actor spawned from a factory gets a fresh instance (fresh state); one spawned from
 *   an instance keeps it. It keeps its address and its mailbox. More than `maxRestarts`
 *   within `withinMs` stops it.
 * - `resume`: report and continue at once with the same state.
 * - `stop`: report and stop the actor (watchers receive `terminated`).
 * - `escalate`: the parent fails with this error and its own strategy decides (a top-level
 *   actor that escalates is stopped).
 */
export type SupervisionStrategy =
  | {
      kind: 'restart';
      minBackoffMs?: number;
      maxBackoffMs?: number;
      factor?: number;
      maxRestarts?: number;
      withinMs?: number;
    }
  | { kind: 'resume' }
  | { kind: 'stop' }
  | { kind: 'escalate' };

export const defaultSupervision: SupervisionStrategy = {
  kind: 'restart',
  minBackoffMs: 10,
  maxBackoffMs: 10_000,
  factor: 2,
  maxRestarts: 10,
  withinMs: 60_000,
};

/** The delay before restart number `attempt` (0-based), with up to 20% jitter. */
export function restartBackoff(
  strategy: Extract<SupervisionStrategy, { kind: 'restart' }>,
  attempt: number,
  jitter01: number,
): number {
  const min = strategy.minBackoffMs ?? 10;
  const max = strategy.maxBackoffMs ?? 10_000;
  const factor = strategy.factor ?? 2;
  const base = Math.min(max, min * factor ** attempt);
  return Math.min(max, base * (1 + 0.2 * jitter01));
}
