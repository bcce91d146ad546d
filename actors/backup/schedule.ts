/**
 * The backup schedule: a cron-like policy the agent runs. Each backup type has an optional
 * rule, either a five-field cron expression in UTC (minute hour day-of-month month
 * day-of-week; `*`, lists `1,3`, ranges `1-5`, steps `*\/15` and `10-50/10`; day-of-week 0-7
 * with 0 and 7 Sunday; when both day fields are restricted, either matching is enough, as
 * in cron) or `@every <n><s|m|h|d>`. When two types are due at the same time, the larger
 * one wins (full > diff > incr). After a scheduled backup the agent applies the retention
 * policy when one is set. The policy is stored in the repository as schedule.json, written
 * by `synod backup schedule`.
 */
import path from 'node:path';
import { BackupError } from './errors.js';
import { atomicWrite, type RepoFs } from './fs.js';
import type { BackupType } from './manifest.js';
import type { RetentionPolicy } from './retention.js';

export interface SchedulePolicy {
  readonly full?: string;
  readonly diff?: string;
  readonly incr?: string;
  readonly retention?: RetentionPolicy;
}

export interface Rule {
  readonly text: string;
  /** The first firing time strictly after `after` (ms, UTC). */
  next(after: number): number;
}

const RANGES: ReadonlyArray<readonly [number, number]> = [
  [0, 59],
  [0, 23],
  [1, 31],
  [1, 12],
  [0, 7],
];

function bad(text: string, why: string): never {
  throw new BackupError(
    'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
    `bad schedule rule ${JSON.stringify(text)}: ${why}`,
  );
}

function parseField(field: string, lo: number, hi: number, text: string): Set<number> {
  const out = new Set<number>();
  for (const part of field.split(',')) {
    const m = /^(\*|\d+(?:-\d+)?)(?:\/(\d+))?$/.exec(part);
    if (!m) bad(text, `cannot read ${JSON.stringify(part)}`);
    const [, range, stepText] = m as RegExpExecArray;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (!(step >= 1)) bad(text, 'step must be ≥ 1');
    let a = lo;
    let b = hi;
    if (range !== '*') {
      const [x, y] = (range as string).split('-').map(Number) as [number, number | undefined];
      a = x;
      b = y ?? (stepText === undefined ? x : hi);
    }
    if (a < lo || b > hi || a > b) bad(text, `${part} is outside ${lo}-${hi}`);
    for (let v = a; v <= b; v += step) out.add(v);
  }
  return out;
}

export function parseRule(text: string): Rule {
  const t = text.trim();
  const every = /^@every\s+(\d+)\s*([smhd])$/.exec(t);
  if (every) {
    const unit = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
      every[2] as 's' | 'm' | 'h' | 'd'
    ];
    const period = Number(every[1]) * unit;
    if (!(period >= 1000)) bad(text, 'period must be at least 1s');
    return { text: t, next: (after) => (Math.floor(after / period) + 1) * period };
  }
  const fields = t.split(/\s+/);
  if (fields.length !== 5)
    bad(
      text,
      'expected 5 fields (minute hour day-of-month month day-of-week) or @every <n><s|m|h|d>',
    );
  const sets = fields.map((f, i) =>
    parseField(f, (RANGES[i] as [number, number])[0], (RANGES[i] as [number, number])[1], text),
  );
  const [min, hour, dom, mon, dowRaw] = sets as [
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
    Set<number>,
  ];
  const dow = new Set([...dowRaw].map((d) => d % 7));
  const domStar = fields[2] === '*';
  const dowStar = fields[4] === '*';
  const dayOk = (d: Date): boolean => {
    const a = dom.has(d.getUTCDate());
    const b = dow.has(d.getUTCDay());
    if (domStar && dowStar) return true;
    if (domStar) return b;
    if (dowStar) return a;
    return a || b;
  };
  return {
    text: t,
    next(after: number): number {
      const d = new Date(Math.floor(after / 60_000) * 60_000 + 60_000);
      for (let guard = 0; guard < 600_000; guard++) {
        if (!mon.has(d.getUTCMonth() + 1) || !dayOk(d)) {
          d.setUTCHours(0, 0, 0, 0);
          d.setUTCDate(d.getUTCDate() + 1);
          continue;
        }
        if (!hour.has(d.getUTCHours())) {
          d.setUTCMinutes(0, 0, 0);
          d.setUTCHours(d.getUTCHours() + 1);
          continue;
        }
        if (!min.has(d.getUTCMinutes())) {
          d.setUTCMinutes(d.getUTCMinutes() + 1, 0, 0);
          continue;
        }
        return d.getTime();
      }
      return bad(text, 'never fires');
    },
  };
}

export interface CompiledSchedule {
  readonly policy: SchedulePolicy;
  readonly rules: ReadonlyArray<{ readonly type: BackupType; readonly rule: Rule }>;
}

export function compileSchedule(policy: SchedulePolicy): CompiledSchedule {
  const rules: Array<{ type: BackupType; rule: Rule }> = [];
  for (const type of ['full', 'diff', 'incr'] as const) {
    const text = policy[type];
    if (text !== undefined) rules.push({ type, rule: parseRule(text) });
  }
  if (rules.length === 0) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      'a schedule needs at least one of full, diff, incr',
    );
  }
  return { policy, rules };
}

const RANK: Record<BackupType, number> = { full: 3, diff: 2, incr: 1 };

/** The next due backup after `after`: its time and type (the largest type due then). */
export function nextDue(s: CompiledSchedule, after: number): { time: number; type: BackupType } {
  let best: { time: number; type: BackupType } | undefined;
  for (const { type, rule } of s.rules) {
    const t = rule.next(after);
    if (!best || t < best.time || (t === best.time && RANK[type] > RANK[best.type]))
      best = { time: t, type };
  }
  return best as { time: number; type: BackupType };
}

export function scheduleFile(repoDir: string): string {
  return path.join(repoDir, 'schedule.json');
}

export async function saveSchedule(
  fs: RepoFs,
  repoDir: string,
  policy: SchedulePolicy,
): Promise<void> {
  compileSchedule(policy);
  await atomicWrite(fs, scheduleFile(repoDir), Buffer.from(`${JSON.stringify(policy, null, 2)}\n`));
}

export async function loadSchedule(
  fs: RepoFs,
  repoDir: string,
): Promise<SchedulePolicy | undefined> {
  let raw: Buffer;
  try {
    raw = await fs.readFile(scheduleFile(repoDir));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const p = JSON.parse(raw.toString('utf8')) as SchedulePolicy;
    compileSchedule(p);
    return p;
  } catch (err) {
    throw new BackupError(
      'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
      `${scheduleFile(repoDir)}: ${(err as Error).message}`,
    );
  }
}
