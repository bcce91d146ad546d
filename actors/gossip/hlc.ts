/**
 * Hybrid logical clocks (Kulkarni, Demirbas et al., "Logical Physical Clocks"). A timestamp
 * is (wall, logical, node): `wall` follows the largest physical time seen, `logical` breaks
 * ties within one millisecond, `node` makes timestamps unique. An HLC never goes backwards,
 * stays within the maximum clock offset of physical time, and orders every event after any
 * event it causally depends on (send → receive). It does NOT order concurrent events by
 * real time when physical clocks are skewed: that is what LWW registers lose.
 */
import { GossipError } from './errors.js';

/** [wall ms, logical, node id]: a plain tuple so it crosses the wire. */
export type HlcTimestamp = readonly [number, number, string];

export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  if (a[0] !== b[0]) return a[0] - b[0];
  if (a[1] !== b[1]) return a[1] - b[1];
  return a[2] < b[2] ? -1 : a[2] > b[2] ? 1 : 0;
}

export function isHlcTimestamp(v: unknown): v is HlcTimestamp {
  return (
    Array.isArray(v) &&
    v.length === 3 &&
    typeof v[0] === 'number' &&
    Number.isFinite(v[0]) &&
    typeof v[1] === 'number' &&
    Number.isInteger(v[1]) &&
    v[1] >= 0 &&
    typeof v[2] === 'string'
  );
}

export interface HlcOptions {
  /** Physical clock in ms (wall time; may be skewed). */
  physical: () => number;
  /**
   * Largest tolerated lead of a remote timestamp over local physical time; a message
   * further ahead is refused with SYNOD_ERR_CLOCK_DRIFT instead of dragging the clock.
   * Default: Infinity (accept all).
   */
  maxDriftMs?: number;
}

export class HybridLogicalClock {
  private wall = 0;
  private logical = 0;
  private readonly maxDrift: number;

  constructor(
    readonly node: string,
    private readonly options: HlcOptions,
  ) {
    this.maxDrift = options.maxDriftMs ?? Number.POSITIVE_INFINITY;
  }

  /** A timestamp for a local or send event. */
  now(): HlcTimestamp {
    const pt = Math.floor(this.options.physical());
    if (pt > this.wall) {
      this.wall = pt;
      this.logical = 0;
    } else {
      this.logical++;
    }
    return [this.wall, this.logical, this.node];
  }

  /** Merges a received timestamp; returns the receive event's timestamp. */
  update(remote: HlcTimestamp): HlcTimestamp {
    const pt = Math.floor(this.options.physical());
    if (remote[0] - pt > this.maxDrift) {
      throw new GossipError(
        'SYNOD_ERR_CLOCK_DRIFT',
        `timestamp from ${remote[2]} is ${remote[0] - pt} ms ahead of local time (max ${this.maxDrift})`,
      );
    }
    const wall = Math.max(this.wall, remote[0], pt);
    if (wall === this.wall && wall === remote[0])
      this.logical = Math.max(this.logical, remote[1]) + 1;
    else if (wall === this.wall) this.logical++;
    else if (wall === remote[0]) this.logical = remote[1] + 1;
    else this.logical = 0;
    this.wall = wall;
    return [this.wall, this.logical, this.node];
  }

  /** The last timestamp issued or observed (without advancing). */
  peek(): HlcTimestamp {
    return [this.wall, this.logical, this.node];
  }
}
