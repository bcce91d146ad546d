/**
 * Fault settings of a simulated link. Each applies globally or per directed link
 * (`from → to`); a per-link setting overrides the global one field by field.
 */
export interface DelaySpec {
  /** Minimum delay in ms. */
  min: number;
  /** Maximum delay in ms. */
  max: number;
  /** `uniform` between min and max, or `exponential` with mean (max-min)/4 above min, capped at max. */
  distribution?: 'uniform' | 'exponential';
}

export interface LinkFaults {
  /** Probability a message is lost. */
  drop?: number;
  /** Probability a message is delivered twice. */
  duplicate?: number;
  delay?: DelaySpec;
  /**
   * Probability a message may overtake earlier ones on its link (it gets an extra delay of
   * up to `reorderWindowMs`). Without it, each link is FIFO like a TCP connection.
   */
  reorder?: number;
  reorderWindowMs?: number;
}

/** A filter sees every message before faults apply and may drop it or delay it. */
export type MessageFilter = (info: {
  from: string;
  to: string;
  message: unknown;
  kind: string;
}) => 'deliver' | 'drop' | { delayMs: number };

export function validateFaults(f: LinkFaults): void {
  const prob = (name: string, v: number | undefined) => {
    if (v !== undefined && !(v >= 0 && v <= 1)) {
      throw new RangeError(`fault "${name}" must be a probability in [0, 1], got ${v}`);
    }
  };
  prob('drop', f.drop);
  prob('duplicate', f.duplicate);
  prob('reorder', f.reorder);
  if (f.delay) {
    if (!(f.delay.min >= 0) || !(f.delay.max >= f.delay.min)) {
      throw new RangeError(`fault "delay" needs 0 ≤ min ≤ max, got ${f.delay.min}..${f.delay.max}`);
    }
  }
  if (f.reorderWindowMs !== undefined && !(f.reorderWindowMs >= 0)) {
    throw new RangeError('fault "reorderWindowMs" must be ≥ 0');
  }
}
