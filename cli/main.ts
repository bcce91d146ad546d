/**
 * The `synod` command. Each sub-command lives in cli/commands/<name>.ts and exports
 * `summary` (one line for the help) and `run(argv)` (returns the exit code). Adding a
 * command is adding a file.
 */
import { readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export interface CommandModule {
  summary: string;
  run(argv: string[]): Promise<number>;
}

const commandsDir = path.join(path.dirname(fileURLToPath(import.meta.url)), 'commands');

function commandNames(): string[] {
  const ext = path.extname(fileURLToPath(import.meta.url));
  try {
    return readdirSync(commandsDir)
      .filter((f) => f.endsWith(ext) && !f.endsWith(`.d${ext}`) && !f.startsWith('_'))
      .map((f) => f.slice(0, -ext.length))
      .sort();
  } catch {
    return [];
  }
}

async function load(name: string): Promise<CommandModule> {
  const ext = path.extname(fileURLToPath(import.meta.url));
  return (await import(
    pathToFileURL(path.join(commandsDir, `${name}${ext}`)).href
  )) as CommandModule;
}

/**
 * Output piped into a reader that stops early (`synod status | head -3`) is not an error: end
 * quietly with the exit code so far instead of crashing with EPIPE.
 */
let pipesGuarded = false;
function endQuietlyOnClosedPipe(): void {
  if (pipesGuarded) return;
  pipesGuarded = true;
  for (const stream of [process.stdout, process.stderr]) {
    stream.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code === 'EPIPE') process.exit(process.exitCode ?? 0);
      throw err;
    });
  }
}

export async function main(argv: string[]): Promise<number> {
  endQuietlyOnClosedPipe();
  const [cmd, ...rest] = argv;
  const names = commandNames();
  if (!cmd || cmd === 'help' || cmd === '--help' || cmd === '-h') {
    const lines = ['usage: synod <command> [options]', '', 'commands:'];
    for (const n of names) lines.push(`  ${n.padEnd(10)} ${(await load(n)).summary}`);
    lines.push('', 'Run "synod <command> --help" for the options of a command.');
    console.log(lines.join('\n'));
    return 0;
  }
  if (!names.includes(cmd)) {
    console.error(`synod: unknown command "${cmd}" (try: synod help)`);
    return 2;
  }
  return (await load(cmd)).run(rest);
}
