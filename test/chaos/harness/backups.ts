/**
 * Backups taken during faults (the [backup] part of the chaos run, both protocols): at fixed
 * fractions of the workload, whatever fault is active then, a `synod backup full --cluster`
 * process backs up and leaves — on Raft it joins as a learner (listening on the host's bridge
 * address), on Multi-Paxos it pulls chosen slots from the members' learners (docs/backup.md).
 * A backup may fail under a fault — that is reported with its reason, and retried once. Every
 * backup that completes is judged after the run: the repository verifies, and every key's
 * value in the backup is a value some client wrote to that key (a backup never invents or
 * mixes up data). The schedule of faults is untouched: seeds name the same runs as before.
 */
import type { KvKeyedState } from '../../../actors/backup/kv-state.js';
import { Repository } from '../../../actors/backup/repository.js';
import { restore } from '../../../actors/backup/restore.js';
import { stateKindOf } from '../../../actors/backup/state-kind.js';
import { verify } from '../../../actors/backup/verify.js';
import type { HistoryEvent } from '../../../lib/history/event.js';
import { runSynod } from '../../helpers/node-processes.js';
import { monotonicNow } from './clock.js';
import type { ChaosCluster } from './cluster.js';

export interface BackupAttempt {
  at: number;
  ok: boolean;
  id?: string;
  index?: number;
  message?: string;
  /** Exit 3: written, but the agent could not leave the cluster (its warning line). */
  leftBehind?: string;
  ms: number;
}

/** Runs `synod backup full --cluster …` once; never rejects. */
export async function backupOnce(
  c: ChaosCluster,
  opts: { repo: string; secretFile: string; listenHost: string; agentId: string },
): Promise<BackupAttempt> {
  const at = monotonicNow();
  const r = await runSynod(
    [
      'backup',
      'full',
      '--cluster',
      c.peerSpecs().join(','),
      '--secret-file',
      opts.secretFile,
      '--repo',
      opts.repo,
      '--agent-id',
      opts.agentId,
      '--listen',
      `${opts.listenHost}:0`,
      '--json',
    ],
    90_000,
    c.cli.cmd,
  );
  const ms = Math.round(monotonicNow() - at);
  // Exit 3: the backup is written (and judged like any other), its agent did not leave.
  if (r.code === 0 || r.code === 3) {
    try {
      const m = JSON.parse(r.out) as { id: string; index: number };
      const leftBehind = r.code === 3 ? r.err.trim().split('\n').slice(-1)[0] : undefined;
      return { at, ok: true, id: m.id, index: m.index, ms, ...(leftBehind ? { leftBehind } : {}) };
    } catch {
      // fall through: report the output
    }
  }
  return {
    at,
    ok: false,
    message: `exit ${r.code}: ${(r.err || r.out).trim().split('\n').slice(-2).join(' | ')}`,
    ms,
  };
}

/** Values each key was ever given by a client (writes and the new value of a cas). */
function writtenValues(history: readonly HistoryEvent[]): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const e of history) {
    if (e.type !== 'invoke' || e.key === undefined || e.key === null) continue;
    const v =
      e.f === 'write' ? e.value : e.f === 'cas' && Array.isArray(e.value) ? e.value[1] : undefined;
    if (typeof v !== 'string') continue;
    const key = String(e.key);
    const s = out.get(key) ?? new Set<string>();
    out.set(key, s);
    s.add(v);
  }
  return out;
}

/** The problems with the completed backups in `repo` (an empty list when all is well). */
export async function judgeBackups(
  repoDir: string,
  attempts: readonly BackupAttempt[],
  history: readonly HistoryEvent[],
): Promise<string[]> {
  const done = attempts.filter((a) => a.ok && a.id);
  if (done.length === 0) return [];
  const problems: string[] = [];
  const repo = await Repository.open(repoDir);
  const v = await verify(repo);
  // An archive gap between two separate agents' backups is expected (no agent ran between).
  const damage = v.problems.filter((p) => p.kind !== 'archive-gap');
  if (damage.length)
    problems.push(
      `the backup repository does not verify: ${damage.map((p) => `${p.kind} ${p.detail ?? ''}`).join('; ')}`,
    );
  const written = writtenValues(history);
  for (const a of done) {
    const res = await restore(
      repo,
      { kind: 'backup', id: a.id as string },
      {
        factory: stateKindOf(repo).factory as () => KvKeyedState,
      },
    );
    const kvs = (res.state.inner as KvKeyedState).machine.range({ start: '' }).kvs;
    for (const kv of kvs) {
      // The harness's own probe key, and the session entries a Multi-Paxos backup keeps.
      if (kv.key === 'chaos-probe' || kv.key.startsWith('\0')) continue;
      if (!written.get(kv.key)?.has(kv.value))
        problems.push(
          `backup ${a.id} (index ${a.index}) holds ${kv.key}=${JSON.stringify(kv.value)}, a value no client wrote`,
        );
    }
  }
  return problems;
}
