/** Progress of a long repository operation, reported to an optional callback. */
export interface Progress {
  readonly phase: 'backup' | 'restore' | 'replay' | 'verify' | 'expire';
  /** Plain bytes processed so far. */
  readonly bytes: number;
  /** Total plain bytes when known up front. */
  readonly totalBytes?: number;
  readonly chunks: number;
  readonly totalChunks?: number;
  /** Bytes written to the repository so far (new chunks). */
  readonly storedBytes?: number;
}

export type ProgressFn = (p: Progress) => void;
