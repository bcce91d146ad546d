/**
 * Command-line options for every `synod` sub-command, without a dependency: flags
 * (`--name value`, `--name=value`, `--flag`), positionals, and the same settings from a JSON
 * config file (`--config FILE`) and from environment variables (`SYNOD_<NAME>`). Precedence:
 * flag > environment > config file > default.
 */
import { readFileSync } from 'node:fs';

export class CliError extends Error {
  constructor(
    message: string,
    /** Exit code: 2 for usage errors, 1 for runtime failures. */
    readonly exitCode = 2,
    readonly code = 'SYNOD_ERR_USAGE',
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export type OptionKind = 'string' | 'number' | 'boolean' | 'list';

export interface OptionSpec {
  kind: OptionKind;
  description: string;
  default?: string | number | boolean | string[];
  /** Environment variable; defaults to SYNOD_<NAME_IN_UPPER_SNAKE>. */
  env?: string | false;
  /** Allowed values for a string option. */
  choices?: readonly string[];
  required?: boolean;
}

export type OptionSpecs = Record<string, OptionSpec>;

export type OptionValue = string | number | boolean | string[] | undefined;

export interface Parsed {
  options: Record<string, OptionValue>;
  positionals: string[];
  /** Where each option's value came from. */
  sources: Record<string, 'flag' | 'env' | 'config' | 'default'>;
}

function envName(name: string): string {
  return `SYNOD_${name.replace(/-/g, '_').toUpperCase()}`;
}

function convert(name: string, spec: OptionSpec, raw: unknown, where: string): OptionValue {
  switch (spec.kind) {
    case 'boolean':
      if (typeof raw === 'boolean') return raw;
      if (raw === 'true' || raw === '1' || raw === 'yes') return true;
      if (raw === 'false' || raw === '0' || raw === 'no') return false;
      throw new CliError(`--${name} (from ${where}) must be true or false, got "${String(raw)}"`);
    case 'number': {
      const n = typeof raw === 'number' ? raw : Number(raw);
      if (raw === '' || !Number.isFinite(n)) {
        throw new CliError(`--${name} (from ${where}) must be a number, got "${String(raw)}"`);
      }
      return n;
    }
    case 'list':
      if (Array.isArray(raw)) return raw.map(String);
      return String(raw)
        .split(',')
        .map((s) => s.trim())
        .filter((s) => s.length > 0);
    default: {
      const s = String(raw);
      if (spec.choices && !spec.choices.includes(s)) {
        throw new CliError(
          `--${name} (from ${where}) must be one of ${spec.choices.join(', ')}; got "${s}"`,
        );
      }
      return s;
    }
  }
}

export function parseArgs(
  argv: readonly string[],
  specs: OptionSpecs,
  env: NodeJS.ProcessEnv = process.env,
): Parsed {
  const flags: Record<string, unknown> = {};
  const positionals: string[] = [];
  const all: OptionSpecs = {
    config: {
      kind: 'string',
      description: 'read settings from this JSON file',
      env: 'SYNOD_CONFIG',
    },
    ...specs,
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i] as string;
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith('--') || arg === '--') {
      positionals.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    let name = eq > 0 ? arg.slice(2, eq) : arg.slice(2);
    let value: unknown = eq > 0 ? arg.slice(eq + 1) : undefined;
    let spec = all[name];
    if (
      !spec &&
      name.startsWith('no-') &&
      all[name.slice(3)]?.kind === 'boolean' &&
      value === undefined
    ) {
      name = name.slice(3);
      spec = all[name];
      value = false;
    }
    if (!spec) {
      const known = Object.keys(all).map((k) => `--${k}`);
      throw new CliError(`unknown option --${name} (known: ${known.join(', ')})`);
    }
    if (value === undefined) {
      if (spec.kind === 'boolean') value = true;
      else {
        const next = argv[i + 1];
        if (next === undefined || (next.startsWith('--') && next.length > 2)) {
          throw new CliError(`--${name} needs a value`);
        }
        value = next;
        i++;
      }
    }
    flags[name] = value;
  }

  let config: Record<string, unknown> = {};
  const configPath = (flags.config as string | undefined) ?? env.SYNOD_CONFIG;
  if (configPath) {
    let text: string;
    try {
      text = readFileSync(configPath, 'utf8');
    } catch (err) {
      throw new CliError(
        `cannot read config file ${configPath}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      );
    }
    try {
      const parsed: unknown = JSON.parse(text);
      if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
        throw new Error('not an object');
      config = parsed as Record<string, unknown>;
    } catch (err) {
      throw new CliError(
        `config file ${configPath} is not a JSON object: ${(err as Error).message}`,
      );
    }
    for (const key of Object.keys(config)) {
      if (!all[key]) throw new CliError(`config file ${configPath}: unknown setting "${key}"`);
    }
  }

  const options: Record<string, OptionValue> = {};
  const sources: Parsed['sources'] = {};
  for (const [name, spec] of Object.entries(all)) {
    const envVar = spec.env === false ? undefined : (spec.env ?? envName(name));
    if (name in flags) {
      options[name] = convert(name, spec, flags[name], 'command line');
      sources[name] = 'flag';
    } else if (envVar && env[envVar] !== undefined && env[envVar] !== '') {
      options[name] = convert(name, spec, env[envVar], envVar);
      sources[name] = 'env';
    } else if (name in config) {
      options[name] = convert(name, spec, config[name], 'config file');
      sources[name] = 'config';
    } else if (spec.default !== undefined) {
      options[name] = spec.default;
      sources[name] = 'default';
    } else if (spec.required) {
      throw new CliError(`--${name} is required (${spec.description})`);
    }
  }
  return { options, positionals, sources };
}

export function usage(command: string, synopsis: string, specs: OptionSpecs): string {
  const lines = [`usage: synod ${command} ${synopsis}`, '', 'options:'];
  for (const [name, spec] of Object.entries(specs)) {
    const arg = spec.kind === 'boolean' ? '' : ` <${spec.kind === 'list' ? 'a,b,…' : spec.kind}>`;
    const def = spec.default !== undefined ? ` (default: ${String(spec.default)})` : '';
    const env = spec.env === false ? '' : ` [env ${spec.env ?? envName(name)}]`;
    lines.push(`${`  --${name}${arg}`.padEnd(30)} ${spec.description}${def}${env}`);
  }
  lines.push(`${'  --config <file>'.padEnd(30)} read settings from a JSON file [env SYNOD_CONFIG]`);
  return lines.join('\n');
}

/**
 * Turns any error into one line a person can act on (and an exit code). With `verbose`
 * the stack is printed too.
 */
export function reportError(
  err: unknown,
  verbose: boolean,
  write: (s: string) => void = (s) => process.stderr.write(s),
): number {
  if (err instanceof CliError) {
    write(`synod: ${err.message}\n`);
    if (verbose && err.stack) write(`${err.stack}\n`);
    return err.exitCode;
  }
  const e = err as NodeJS.ErrnoException & { address?: string; port?: number; purpose?: string };
  let line: string;
  if (e instanceof Error && /EADDRINUSE/.test(e.message) && e.code !== 'EADDRINUSE') {
    write(
      `synod: ${e.message.replace(/^.*?cannot listen on/, 'cannot listen on')}: another process uses that port; stop it or choose another --listen port\n`,
    );
    if (verbose && e.stack) write(`${e.stack}\n`);
    return 1;
  }
  switch (e?.code) {
    case 'EADDRINUSE':
      line =
        e.purpose === 'dashboard'
          ? `dashboard port ${e.port ?? ''} on ${e.address ?? 'this host'} is already in use: stop the other process or choose another --dashboard port`
          : `port ${e.port ?? ''} on ${e.address ?? 'this host'} is already in use: stop the other process or choose another --listen port`;
      break;
    case 'EACCES':
    case 'EPERM':
      line = `permission denied${e.path ? ` on ${e.path}` : ''}: check the file or port permissions`;
      break;
    case 'EROFS':
      line = `${e.path ?? 'the data directory'} is on a read-only file system: choose a writable --data directory`;
      break;
    case 'ENOSPC':
      line = `no space left on the device${e.path ? ` holding ${e.path}` : ''}: free space, then restart`;
      break;
    default:
      line = `${e?.code ? `${e.code}: ` : ''}${e instanceof Error ? e.message : String(err)}`;
  }
  write(`synod: ${line}\n`);
  if (verbose && e instanceof Error && e.stack) write(`${e.stack}\n`);
  return 1;
}
