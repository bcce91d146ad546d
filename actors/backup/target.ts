/** Restore targets: `latest`, a backup id, `index:N` or `time:ISO-8601`. */
import { BackupError } from './errors.js';
import { MANIFEST_ID_RE } from './manifest.js';

export type RestoreTarget =
  | { readonly kind: 'latest' }
  | { readonly kind: 'backup'; readonly id: string }
  | { readonly kind: 'index'; readonly index: number }
  | {
      readonly kind: 'time';
      readonly time: number;
      /**
       * What to do when the archive cannot tell which entries were committed by `time`
       * (restore.ts `indexAtTime`): refuse with SYNOD_ERR_BACKUP_TIME_AMBIGUOUS (the default), or
       * restore the last index known to be committed at or before it (`earlier`).
       */
      readonly ifAmbiguous?: 'refuse' | 'earlier';
    };

export function parseTarget(text: string): RestoreTarget {
  if (text === 'latest') return { kind: 'latest' };
  if (text.startsWith('index:')) {
    const n = Number(text.slice(6));
    if (!Number.isSafeInteger(n) || n < 0 || text.slice(6).trim() === '') {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        `bad restore target ${text}: index must be a non-negative integer`,
      );
    }
    return { kind: 'index', index: n };
  }
  if (text.startsWith('time:')) {
    const iso = text.slice(5);
    const t = /^\d{4}-\d{2}-\d{2}T/.test(iso) ? Date.parse(iso) : Number.NaN;
    if (Number.isNaN(t)) {
      throw new BackupError(
        'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
        `bad restore target ${text}: expected time:YYYY-MM-DDTHH:MM:SS[.sss]Z`,
      );
    }
    return { kind: 'time', time: t };
  }
  if (MANIFEST_ID_RE.test(text)) return { kind: 'backup', id: text };
  throw new BackupError(
    'SYNOD_ERR_BACKUP_INVALID_ARGUMENT',
    `bad restore target ${JSON.stringify(text)}: expected latest, a backup id, index:N or time:ISO`,
  );
}

export function formatTarget(t: RestoreTarget): string {
  switch (t.kind) {
    case 'latest':
      return 'latest';
    case 'backup':
      return t.id;
    case 'index':
      return `index:${t.index}`;
    case 'time':
      return `time:${new Date(t.time).toISOString()}`;
  }
}
