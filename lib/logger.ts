/**
 * A minimal structured logger. Runtime components log through this interface so that a
 * CLI can switch between human text and JSON lines, and tests can silence or capture logs.
 */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error';

export interface Logger {
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void;
}

const ORDER: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export function consoleLogger(
  options: {
    level?: LogLevel;
    format?: 'text' | 'json';
    name?: string;
    /** Wall-clock ms (e.g. a SystemClock's `wallNow`): JSON lines then carry an ISO `time`. */
    wallNow?: () => number;
  } = {},
): Logger {
  const min = ORDER[options.level ?? 'info'];
  const format = options.format ?? 'text';
  return {
    log(level, message, fields) {
      if (ORDER[level] < min) return;
      if (format === 'json') {
        const line = {
          ...(options.wallNow ? { time: new Date(options.wallNow()).toISOString() } : {}),
          level,
          msg: message,
          ...(options.name ? { name: options.name } : {}),
          ...fields,
        };
        process.stderr.write(`${JSON.stringify(line)}\n`);
        return;
      }
      const extra = fields && Object.keys(fields).length > 0 ? ` ${JSON.stringify(fields)}` : '';
      const prefix = options.name ? `[${options.name}] ` : '';
      process.stderr.write(`${level.toUpperCase()} ${prefix}${message}${extra}\n`);
    },
  };
}

export const silentLogger: Logger = { log() {} };

/** Keeps log lines in memory (for tests). */
export class MemoryLogger implements Logger {
  readonly lines: { level: LogLevel; message: string; fields?: Record<string, unknown> }[] = [];
  log(level: LogLevel, message: string, fields?: Record<string, unknown>): void {
    this.lines.push(fields ? { level, message, fields } : { level, message });
  }
}
