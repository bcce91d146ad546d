/**
 * Argument parsing shared by `synod backup` and `synod restore`: `--name value`,
 * `--name=value` and boolean flags, with a clear usage error for anything unknown.
 */
import { loadKey } from './crypto.js';
import { BackupError } from './errors.js';
import { Repository } from './repository.js';

export class UsageError extends Error {}

export interface ParsedArgs {
  readonly positional: string[];
  readonly values: Map<string, string>;
  readonly flags: Set<string>;
}

export function parseArgs(
  argv: readonly string[],
  valueOpts: readonly string[],
  flagOpts: readonly string[],
): ParsedArgs {
  const positional: string[] = [];
  const values = new Map<string, string>();
  const flags = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '-h') {
      flags.add('--help');
      continue;
    }
    if (!a.startsWith('--')) {
      positional.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    if (flagOpts.includes(name)) {
      if (eq > 0) throw new UsageError(`${name} takes no value`);
      flags.add(name);
    } else if (valueOpts.includes(name)) {
      let v: string | undefined = eq > 0 ? a.slice(eq + 1) : argv[i + 1];
      if (eq < 0) i++;
      if (v === undefined || (eq < 0 && v.startsWith('--')))
        throw new UsageError(`${name} needs a value`);
      v = v as string;
      values.set(name, v);
    } else {
      throw new UsageError(`unknown option ${name}`);
    }
  }
  return { positional, values, flags };
}

export function intOpt(args: ParsedArgs, name: string, min = 0): number | undefined {
  const v = args.values.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min)
    throw new UsageError(`${name} must be an integer ≥ ${min} (got ${v})`);
  return n;
}

/** Opens the repository named by --repo with the key from --key-file or $SYNOD_BACKUP_KEY. */
export async function openRepo(args: ParsedArgs): Promise<Repository> {
  const dir = args.values.get('--repo');
  if (!dir) throw new UsageError('--repo DIR is required');
  const keyFile = args.values.get('--key-file');
  const key = loadKey(keyFile !== undefined ? { keyFile } : {});
  return Repository.open(dir, key ? { key } : {});
}

/** Prints an error the way every backup command does; returns the exit code. */
export function reportError(cmd: string, err: unknown, usage: string): number {
  if (err instanceof UsageError) {
    console.error(`${cmd}: ${err.message}\n\n${usage}`);
    return 2;
  }
  if (err instanceof BackupError) {
    console.error(`${cmd}: ${err.code}: ${err.message}`);
    return 1;
  }
  const e = err as { code?: string; message?: string; exitCode?: unknown };
  console.error(`${cmd}: ${e?.code ? `${e.code}: ` : ''}${e?.message ?? String(err)}`);
  // An error that names its exit code (the CLI's CliError: 2 for a bad secret file) keeps it.
  return typeof e?.exitCode === 'number' ? e.exitCode : 1;
}
