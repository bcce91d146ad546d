/**
 * The logger the transport writes to. Structurally the same as the runtime's `Logger`
 * (`log(level, message, fields)`), so either can be passed in. The default writes to stderr.
 * Bad-input logs are rate limited per peer and code so a hostile peer cannot flood the log.
 */
import type { Clock } from '../../lib/clock.js';

import type { Logger, LogLevel } from '../../lib/logger.js';

export type { LogLevel };
/** The runtime's logger interface (lib/logger.ts). */
export type TransportLogger = Logger;

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Text lines on stderr: `WARN [ws a] message {"fields":...}`. */
export function defaultLogger(name: string, level: LogLevel = 'info'): TransportLogger {
  const min = ORDER[level];
  return {
    log(l, message, fields) {
      if (ORDER[l] < min) return;
      const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
      process.stderr.write(`${l.toUpperCase()} [${name}] ${message}${extra}\n`);
    },
  };
}

/**
 * Lets the first `burst` lines per key through in each `windowMs`, then counts the rest and
 * reports how many were suppressed when the window rolls over.
 */
export class RateLimitedLog {
  private readonly windows = new Map<string, { start: number; count: number }>();

  constructor(
    private readonly logger: TransportLogger,
    private readonly clock: Clock,
    private readonly burst = 20,
    private readonly windowMs = 10_000,
  ) {}

  log(key: string, level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    const now = this.clock.now();
    let w = this.windows.get(key);
    if (w === undefined || now - w.start >= this.windowMs) {
      if (w !== undefined && w.count > this.burst) {
        this.logger.log('warn', `suppressed ${w.count - this.burst} similar log lines`, { key });
      }
      w = { start: now, count: 0 };
      this.windows.set(key, w);
      if (this.windows.size > 10_000) this.windows.clear();
    }
    w.count++;
    if (w.count <= this.burst) this.logger.log(level, message, fields);
  }
}
