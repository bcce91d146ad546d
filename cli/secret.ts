/** Reads a cluster secret file (`--secret-file` / `SYNOD_SECRET_FILE`) with one-line errors. */
import { readFileSync, statSync } from 'node:fs';
import { CliError } from './args.js';

export function readSecretFile(file: string | undefined): string | undefined {
  if (file === undefined) return undefined;
  let text: string;
  try {
    if (statSync(file).isDirectory())
      throw new CliError(
        `secret file ${file} is a directory: point --secret-file (or SYNOD_SECRET_FILE) at the file that holds the cluster secret`,
        2,
        'SYNOD_ERR_SECRET_FILE',
      );
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    if (err instanceof CliError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new CliError(
      code === 'ENOENT'
        ? `cannot read secret file ${file} (ENOENT): use the file every node of the cluster was started with (copy it here), or create one for a new cluster with: openssl rand -hex 32 > ${file}`
        : `cannot read secret file ${file} (${code}): check that it exists and that this user may read it`,
      1,
      'SYNOD_ERR_SECRET_FILE',
    );
  }
  if (text.length < 16) {
    throw new CliError(
      `secret file ${file} holds ${text.length} characters: use at least 16 (e.g. openssl rand -hex 32 > ${file})`,
      2,
      'SYNOD_ERR_SECRET_FILE',
    );
  }
  return text;
}
