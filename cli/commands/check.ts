/**
 * `synod check HISTORY`: decides whether a recorded history is linearizable.
 * Exit codes: 0 linearizable, 1 violation, 3 unknown (budget ran out), 2 usage or bad input.
 */
import { writeFileSync } from 'node:fs';
import {
  type BuiltinModelName,
  builtinModels,
  checkHistory,
  HistoryError,
  type HistoryFormat,
  readHistoryFile,
} from '../../lib/history/index.js';
import { renderHtmlReport } from '../../lib/history/report.js';

export const summary = 'check a history (JSON lines, Jepsen EDN or log) for linearizability';

const USAGE = `usage: synod check HISTORY [options]

Checks that the operations recorded in HISTORY can be put in one sequential order that
respects real time and the model (linearizability), key by key.

options:
  --model register|kv   sequential model (default: guessed from the operations:
                        read/write/cas/delete → register, get/put/append → kv)
  --format jsonl|jepsen|edn|auto
                        input format (default auto: by extension, then by content)
  --timeout S           give up after S seconds (verdict "unknown", exit 3); default 60
  --html OUT.html       write a self-contained HTML report (timeline per process)
  --json                print the verdict as JSON instead of text
  -h, --help            this help

exit codes: 0 linearizable, 1 violation, 3 unknown (time or memory budget ran out),
            2 usage error or bad input (the message names file:line)`;

interface Args {
  history?: string;
  model?: string;
  format: HistoryFormat | 'auto';
  timeoutS: number;
  html?: string;
  json: boolean;
  help: boolean;
}

class UsageError extends Error {}

function parseArgs(argv: string[]): Args {
  const args: Args = { format: 'auto', timeoutS: 60, json: false, help: false };
  const takeValue = (name: string, inline: string | undefined, i: number): [string, number] => {
    if (inline !== undefined) return [inline, i];
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--')) throw new UsageError(`${name} needs a value`);
    return [v, i + 1];
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const inline = eq > 0 ? a.slice(eq + 1) : undefined;
    switch (name) {
      case '-h':
      case '--help':
        args.help = true;
        break;
      case '--json':
        args.json = true;
        break;
      case '--model': {
        const [v, j] = takeValue(name, inline, i);
        if (!(v in builtinModels))
          throw new UsageError(
            `unknown model "${v}" (choose ${Object.keys(builtinModels).join(' or ')})`,
          );
        args.model = v;
        i = j;
        break;
      }
      case '--format': {
        const [v, j] = takeValue(name, inline, i);
        if (!['jsonl', 'jepsen', 'edn', 'auto'].includes(v))
          throw new UsageError(`unknown format "${v}" (choose jsonl, jepsen, edn or auto)`);
        args.format = v as Args['format'];
        i = j;
        break;
      }
      case '--timeout': {
        const [v, j] = takeValue(name, inline, i);
        const s = Number(v);
        if (!Number.isFinite(s) || s <= 0)
          throw new UsageError(`--timeout needs a positive number of seconds, got "${v}"`);
        args.timeoutS = s;
        i = j;
        break;
      }
      case '--html': {
        const [v, j] = takeValue(name, inline, i);
        args.html = v;
        i = j;
        break;
      }
      default:
        if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option "${a}"`);
        if (args.history !== undefined)
          throw new UsageError(`one history file at a time (got "${args.history}" and "${a}")`);
        args.history = a;
    }
  }
  return args;
}

/** Picks the model from the functions used when --model is not given. */
function guessModel(fs: Set<string>, format: HistoryFormat): BuiltinModelName {
  if (format === 'jepsen') return 'register';
  const fits = (Object.keys(builtinModels) as BuiltinModelName[]).filter((m) =>
    [...fs].every((f) => builtinModels[m].functions.includes(f)),
  );
  if (fits.length === 1) return fits[0] as BuiltinModelName;
  if (fs.size === 0) return 'register';
  throw new UsageError(
    `cannot tell the model from the operations (${[...fs].join(', ')}); pass --model register or --model kv`,
  );
}

export async function run(argv: string[]): Promise<number> {
  let args: Args;
  try {
    args = parseArgs(argv);
  } catch (err) {
    console.error(`synod check: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  if (args.history === undefined) {
    console.error(`synod check: no history file given\n\n${USAGE}`);
    return 2;
  }
  try {
    const parsed = readHistoryFile(args.history, { format: args.format });
    const model =
      (args.model as BuiltinModelName | undefined) ??
      guessModel(new Set(parsed.events.map((e) => e.f)), parsed.format);
    const verdict = checkHistory(parsed.events, {
      model,
      timeoutMs: args.timeoutS * 1000,
      file: args.history,
      lines: parsed.lines,
    });
    if (args.json) {
      console.log(
        JSON.stringify(
          { ...verdict, operations: undefined, file: args.history, format: parsed.format },
          (_k, v) => (v === Number.POSITIVE_INFINITY ? null : v),
          2,
        ),
      );
    } else {
      console.log(verdict.explanation);
      console.log(
        `(${parsed.format}, ${verdict.stats.events} events, ${verdict.stats.steps} search steps, ${verdict.stats.memoEntries} memoised configurations, ${verdict.stats.elapsedMs.toFixed(0)} ms)`,
      );
    }
    if (args.html !== undefined) {
      writeFileSync(args.html, renderHtmlReport(verdict, { title: args.history }));
      if (!args.json) console.log(`report written to ${args.html}`);
    }
    return verdict.result === 'linearizable' ? 0 : verdict.result === 'violation' ? 1 : 3;
  } catch (err) {
    if (err instanceof HistoryError) {
      console.error(`synod check: ${err.code}: ${err.message}`);
      return 2;
    }
    if (err instanceof UsageError) {
      console.error(`synod check: ${err.message}`);
      return 2;
    }
    throw err;
  }
}
