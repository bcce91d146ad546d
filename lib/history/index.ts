/**
 * Histories and linearizability checking. Record what clients saw with `HistoryRecorder`,
 * read histories from other systems with `readHistoryFile`, and decide with `checkHistory`.
 */
export {
  type Budget,
  type Candidate,
  type CheckOptions,
  checkHistory,
  checkKey,
  checkOperations,
  describeOp,
  explainVerdict,
  type KeyVerdict,
  type PlacedOperation,
  resolveModel,
  type Verdict,
  type VerdictResult,
} from './checker.js';
export {
  type EventType,
  HistoryError,
  type HistoryErrorCode,
  type HistoryEvent,
  type Operation,
  type Outcome,
  pairEvents,
} from './event.js';
export {
  type BuiltinModelName,
  builtinModels,
  canonical,
  hashString,
  kvModel,
  type Model,
  type ModelInput,
  type ModelOutput,
  registerModel,
  type StepResult,
} from './model.js';
export {
  detectFormat,
  type HistoryFormat,
  type ParsedHistory,
  type ParseOptions,
  parseEdnHistory,
  parseHistory,
  parseJepsenLog,
  parseJsonl,
  readHistoryFile,
} from './parse.js';
export {
  HistoryRecorder,
  type LineSink,
  type OperationHandle,
  type RecorderOptions,
} from './recorder.js';
export { type ReportOptions, renderHtmlReport } from './report.js';
