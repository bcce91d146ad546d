/** `--name=value` / `--name value` / `--flag` parsing for the benchmark scripts. */
export function flag(argv: string[], name: string): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === `--${name}`) {
      const next = argv[i + 1];
      return next !== undefined && !next.startsWith('--') ? next : 'true';
    }
    if (a.startsWith(`--${name}=`)) return a.slice(name.length + 3);
  }
  return undefined;
}

export function numFlag(argv: string[], name: string, dflt: number): number {
  const v = flag(argv, name);
  if (v === undefined) return dflt;
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name}=${v} is not a non-negative number`);
  return n;
}

export function listFlag(argv: string[], name: string, dflt: number[]): number[] {
  const v = flag(argv, name);
  if (v === undefined) return dflt;
  const list = v.split(',').map(Number);
  if (list.length === 0 || list.some((n) => !Number.isInteger(n) || n < 1))
    throw new Error(`--${name}=${v} is not a comma-separated list of positive integers`);
  return list;
}

export function boolFlag(argv: string[], name: string): boolean {
  const v = flag(argv, name);
  return v !== undefined && v !== 'false' && v !== '0';
}
