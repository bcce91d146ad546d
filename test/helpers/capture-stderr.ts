/**
 * Runs a CLI command in this process with what it writes to stderr captured (console.error
 * included: it writes through process.stderr), for tests of one-line error messages.
 */
export async function captureStderr<T>(fn: () => Promise<T>): Promise<{ value: T; err: string }> {
  const write = process.stderr.write;
  let err = '';
  process.stderr.write = ((chunk: string | Uint8Array) => {
    err += chunk.toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { value: await fn(), err };
  } finally {
    process.stderr.write = write;
  }
}
