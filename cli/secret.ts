/** Reads a cluster secret file (`--secret-file` / `SYNOD_SECRET_FILE`) with one-line errors. */
import { readFileSync, statSync } from 'node:fs';
import { CliError } from './args.js';

export function readSecretFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    if (statSync(file).isDirectory()) throw new CliError(`secret file ${file} is a directory`);
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if (err instanceof CliError) throw err;
    throw new CliError(
      `cannot read secret file ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      1,
    );
  }
  if (text.length < 16) {
    throw new CliError(
      `secret file ${file} holds ${text.length} characters: use at least 16 (e.g. openssl rand -hex 32 > ${file})`,
    );
  }
  return text;
}
