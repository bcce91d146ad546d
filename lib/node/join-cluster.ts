/**
 * The joining side of `synod node --join` (and of any member that asks to be added through a
 * node's admin actor, such as the backup agent): ask one of the given nodes to add this one,
 * and keep asking through leader changes.
 *
 * A membership change can only be made by the leader. The node asked forwards the request to
 * the leader it knows (lib/node/node-admin.ts, bounded hops), but there are moments when none
 * can serve it: no leader during an election, a leader that lost its leadership half-way, a
 * node that is down or still starting, a timeout. Those answers are retried here with
 * exponential backoff and jitter, round-robin over every address given, until a bound
 * (`timeoutMs`, default 60 s; `synod node --join-timeout`). Each retry is logged at info.
 *
 * What is not retried, because asking again cannot help: a handshake refusal (wrong cluster
 * secret, another cluster name, another version, a URL that reaches another node), and a
 * request the cluster refuses (a voter asked to join as a learner, a Multi-Paxos cluster).
 *
 * The request is idempotent on the leader: a node that is already a member is answered "ok",
 * so an attempt whose reply was lost is retried into a success, not into an error.
 */
import type { Subscription } from 'rxjs';
import { CliError } from '../../cli/args.js';
import { parsePeer } from '../../transports/websocket/options.js';
import type { Clock } from '../clock.js';
import type { Logger } from '../logger.js';
import type { Random } from '../random.js';
import type { LinkStatus, Transport } from '../transport.js';
import { type DiscoverOptions, discoverNodeId, tlsAdvice } from './discover.js';
import { ADVICE } from './refusal-report.js';

/** The default bound of a join's retries (ms). */
export const DEFAULT_JOIN_TIMEOUT_MS = 60_000;
/**
 * The default bound of one attempt (ms). The leader answers once the joiner has caught up,
 * which can take longer: the next attempt then waits for the same join (it is idempotent).
 */
export const DEFAULT_JOIN_ATTEMPT_MS = 10_000;
/** No attempt starts with less time than this before the bound (ms). */
const MIN_ATTEMPT_MS = 250;
/** Backoff between attempts: the first delay and the cap (ms), before jitter. */
export const JOIN_BACKOFF = { initialMs: 100, maxMs: 4_000 } as const;

/** The answer of a node's admin actor to `node.join`. */
export interface JoinReply {
  ok: boolean;
  message: string;
  members: Record<string, string>;
  /** A stable code when `ok` is false (absent from nodes older than this code). */
  code?: string;
}

/** A node to ask: its URL, and its id once known (`id=ws://…`, or learned by discovery). */
export interface JoinTarget {
  url: string;
  id?: string;
}

/** Answers that say "not now": another attempt (maybe through another node) can succeed. */
export const RETRYABLE_JOIN_CODES: ReadonlySet<string> = new Set([
  'SYNOD_ERR_NO_LEADER',
  'SYNOD_ERR_NOT_LEADER',
  'SYNOD_ERR_NODE_STARTING',
  'SYNOD_ERR_JOIN_BUSY',
  'SYNOD_ERR_JOIN_TIMEOUT',
  // Transport and actor-system failures of one attempt.
  'SYNOD_ERR_ASK_TIMEOUT',
  'SYNOD_ERR_CONNECTION_FAILED',
  'SYNOD_ERR_PEER_UNREACHABLE',
  'SYNOD_ERR_LINK_DOWN',
  'SYNOD_ERR_NO_SUCH_ACTOR',
  'SYNOD_ERR_ACTOR_STOPPED',
  'SYNOD_ERR_QUEUE_FULL',
]);

/** A failed attempt (or the whole join): `retryable` says whether asking again may help. */
export class JoinError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
    this.name = 'JoinError';
  }
}

/**
 * Whether a refusal can go away by asking again. Replies of older nodes carry no code: their
 * "not the leader" / "no leader" / "try again" texts are retryable.
 */
export function isRetryableReply(r: Pick<JoinReply, 'code' | 'message'>): boolean {
  if (r.code !== undefined) return RETRYABLE_JOIN_CODES.has(r.code);
  return /not the leader|no leader|try again|forwarding to leader|still starting/i.test(r.message);
}

/** The code of a thrown error (`SynodError.code`, a `JoinError`'s), if any. */
function codeOf(err: unknown): string | undefined {
  const c = (err as { code?: unknown } | undefined)?.code;
  return typeof c === 'string' ? c : undefined;
}

export interface JoinClusterOptions {
  /** This node: its id and the URL the cluster reaches it at. */
  self: { id: string; url: string };
  /** Every address it was given; tried in order, then round-robin. */
  targets: JoinTarget[];
  /** Join as a non-voting learner (the backup agent) instead of a voter. */
  learner?: boolean;
  clock: Clock;
  random: Random;
  logger: Logger;
  /** Give up after this long without success (ms, default 60 s). */
  timeoutMs?: number;
  /** Bound of one attempt (ms, default 10 s; never past `timeoutMs`). */
  attemptMs?: number;
  backoff?: { initialMs: number; maxMs: number };
  /** What the give-up line suggests (default: the `synod node` flags). */
  advice?: string;
  /**
   * Learns the node id behind a bare URL. Throws a `JoinError` (retryable when the node may
   * come up: connection refused, no answer) or any error (taken as retryable).
   */
  discover(url: string, timeoutMs: number): Promise<string>;
  /**
   * Sends `node.join` to `target`'s admin actor and resolves its reply. Rejects with a
   * `JoinError` for a failure of its own (a handshake refusal is not retryable), or with the
   * actor system's error (a timeout, a lost link: retried).
   */
  ask(
    target: { id: string; url: string },
    msg: { type: 'node.join'; id: string; url: string; learner?: boolean },
    timeoutMs: number,
  ): Promise<JoinReply>;
}

export interface JoinResult {
  reply: JoinReply;
  /** The node whose answer was the success. */
  via: { id: string; url: string };
  attempts: number;
  tookMs: number;
}

/**
 * Asks the targets to add `self` until one says it did, or a refusal that cannot change, or
 * the bound. Resolves with the successful reply; rejects with a `JoinError` whose message is
 * one line saying what happened and what to do (code `SYNOD_ERR_JOIN`, or the refusal's).
 */
export async function joinCluster(o: JoinClusterOptions): Promise<JoinResult> {
  if (o.targets.length === 0)
    throw new JoinError('SYNOD_ERR_JOIN', 'no node to join through was given', false);
  const timeoutMs = o.timeoutMs ?? DEFAULT_JOIN_TIMEOUT_MS;
  const attemptMs = o.attemptMs ?? DEFAULT_JOIN_ATTEMPT_MS;
  const backoff = o.backoff ?? JOIN_BACKOFF;
  const start = o.clock.now();
  const deadline = start + timeoutMs;
  const targets = o.targets.map((t) => ({ ...t }));
  const msg = {
    type: 'node.join' as const,
    id: o.self.id,
    url: o.self.url,
    ...(o.learner ? { learner: true } : {}),
  };
  let attempts = 0;
  let delay = backoff.initialMs;
  let last = '';
  for (let i = 0; ; i++) {
    const target = targets[i % targets.length] as JoinTarget;
    attempts++;
    const left = deadline - o.clock.now();
    const name = target.id !== undefined ? `${target.id} (${target.url})` : target.url;
    try {
      if (target.id === undefined) target.id = await o.discover(target.url, Math.min(5_000, left));
      const reply = await o.ask(
        { id: target.id, url: target.url },
        msg,
        Math.max(1, Math.min(attemptMs, left)),
      );
      if (reply.ok)
        return {
          reply,
          via: { id: target.id, url: target.url },
          attempts,
          tookMs: o.clock.now() - start,
        };
      if (!isRetryableReply(reply))
        throw new JoinError(
          reply.code ?? 'SYNOD_ERR_JOIN',
          `${target.id} refused to add ${o.self.id}: ${reply.message}`,
          false,
        );
      last = `${name}: ${reply.message}${reply.code && !reply.message.includes(reply.code) ? ` (${reply.code})` : ''}`;
    } catch (err) {
      if (err instanceof JoinError && !err.retryable) throw err;
      const code = codeOf(err);
      if (!(err instanceof JoinError) && code !== undefined && !RETRYABLE_JOIN_CODES.has(code)) {
        // An error nobody classified: a bug or a refusal we cannot fix by waiting.
        throw new JoinError(code, `asking ${name}: ${(err as Error).message}`, false);
      }
      last = `${name}: ${(err as Error).message}`;
    }
    const now = o.clock.now();
    // Equal jitter: half the delay fixed, half random, so joiners do not retry in lockstep.
    let wait = delay / 2 + o.random.next() * (delay / 2);
    // The last attempt starts MIN_ATTEMPT_MS before the bound; none after it.
    const lastStart = deadline - MIN_ATTEMPT_MS;
    if (now + wait > lastStart) {
      if (now >= lastStart - 1)
        throw new JoinError(
          'SYNOD_ERR_JOIN',
          `gave up after ${attempts} attempt${attempts === 1 ? '' : 's'} in ${Math.round((now - start) / 1000)} s (bound ${timeoutMs} ms); last answer: ${last} — ${o.advice ?? 'check that a majority of the cluster is up and has a leader (synod status --cluster URL), or allow longer with --join-timeout MS'}`,
          false,
        );
      wait = lastStart - now;
    }
    const next = targets[(i + 1) % targets.length] as JoinTarget;
    o.logger.log(
      'info',
      `join attempt ${attempts} failed: ${last}; retrying in ${Math.round(wait)} ms through ${next.id ?? next.url} (${Math.round((deadline - now - wait) / 1000)} s left)`,
      { attempt: attempts, retryInMs: Math.round(wait) },
    );
    await new Promise<void>((resolve) => o.clock.setTimer(wait, resolve));
    delay = Math.min(delay * 2, backoff.maxMs);
  }
}

/**
 * The targets of `--join`: `ws://host:port` or `id=ws://host:port`, comma-separated. Throws a
 * one-line error naming the bad entry.
 */
export function parseJoinTargets(text: string): JoinTarget[] {
  const out: JoinTarget[] = [];
  for (const raw of text.split(',')) {
    const item = raw.trim();
    if (item === '') continue;
    if (item.includes('=')) {
      try {
        const p = parsePeer(item);
        out.push({ id: p.id, url: p.url });
      } catch (err) {
        throw new CliError(`--join: ${(err as Error).message.replace(/^SYNOD_ERR_[A-Z_]+: /, '')}`);
      }
      continue;
    }
    let u: URL;
    try {
      u = new URL(item);
    } catch {
      throw new CliError(
        `--join: "${item}" is not a URL: expected ws://host:port or id=ws://host:port`,
      );
    }
    if ((u.protocol !== 'ws:' && u.protocol !== 'wss:') || u.port === '')
      throw new CliError(`--join: "${item}" must be ws://host:port or wss://host:port`);
    out.push({ url: item });
  }
  if (out.length === 0) throw new CliError('--join needs at least one ws://host:port');
  return out;
}

/** Handshake refusals that asking again cannot fix (see lib/node/refusal-report.ts). */
const FATAL_REFUSALS = new Set(Object.keys(ADVICE));

/**
 * Learns the id behind a bare `--join` URL. A node that refuses this node's cluster name or
 * version, or a TLS problem, is a JoinError that is not retried; a node that is down or does
 * not answer yet is retried.
 */
export async function discoverJoinTarget(url: string, options: DiscoverOptions): Promise<string> {
  try {
    return await discoverNodeId(url, options);
  } catch (err) {
    const message = (err as Error).message;
    const code = /SYNOD_ERR_[A-Z_]+/.exec(message)?.[0];
    const tls = tlsAdvice(url, /\(([A-Z_]+)\)/.exec(message)?.[1], options.caFile);
    if ((code !== undefined && FATAL_REFUSALS.has(code)) || tls !== undefined)
      throw new JoinError(code ?? 'SYNOD_ERR_TLS', message, false);
    throw new JoinError('SYNOD_ERR_CONNECTION_FAILED', message, true);
  }
}

/** How long an attempt waits for the link to the node it asks to come up (ms). */
export const JOIN_CONNECT_MS = 5_000;

/**
 * Runs `ask` (a request to `target` over `transport`) but ends it early when the link says it
 * cannot be answered: a handshake refusal (not retryable: one line saying what to fix), the
 * link going down after it was up, or no link within `connectMs` (both retryable, so the
 * joiner moves on to another address instead of waiting out the whole attempt).
 */
export function askWatchingLink<T>(
  transport: Pick<Transport, 'links$'> & { linkStatus?(peer: string): LinkStatus | undefined },
  target: { id: string; url: string },
  ask: Promise<T>,
  clock: Clock,
  connectMs = JOIN_CONNECT_MS,
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    let wasUp = false;
    let sub: Subscription | undefined;
    const finish = (settle: () => void) => {
      if (done) return;
      done = true;
      timer.cancel();
      sub?.unsubscribe();
      settle();
    };
    const check = (l: LinkStatus) => {
      if (l.peer !== target.id || done) return;
      if (l.state === 'up') {
        wasUp = true;
        return;
      }
      const code = /SYNOD_ERR_[A-Z_]+/.exec(l.reason ?? '')?.[0];
      const advice = code !== undefined ? ADVICE[code] : undefined;
      if (code !== undefined && advice !== undefined) {
        const detail = (l.reason ?? '').replace(/^.*?SYNOD_ERR_[A-Z_]+: /, '');
        finish(() =>
          reject(
            new JoinError(
              code,
              `${target.id} (${target.url}) refused this node's handshake: ${advice.what} (${code}: ${detail}) — ${advice.todo}`,
              false,
            ),
          ),
        );
      } else if (wasUp && l.state === 'down') {
        finish(() =>
          reject(
            new JoinError(
              'SYNOD_ERR_LINK_DOWN',
              `the link to ${target.id} went down before it answered (${l.reason ?? 'closed'})`,
              true,
            ),
          ),
        );
      }
    };
    const timer = clock.setTimer(connectMs, () => {
      if (wasUp || transport.linkStatus?.(target.id)?.state === 'up') return;
      const why = transport.linkStatus?.(target.id)?.reason ?? 'connecting';
      finish(() =>
        reject(
          new JoinError(
            'SYNOD_ERR_CONNECTION_FAILED',
            `no link to ${target.id} at ${target.url} within ${connectMs} ms (${why})`,
            true,
          ),
        ),
      );
    });
    sub = transport.links$.subscribe(check);
    const now = transport.linkStatus?.(target.id);
    if (now) check(now);
    if (done) sub.unsubscribe();
    ask.then(
      (v) => finish(() => resolve(v)),
      (err: unknown) => finish(() => reject(err)),
    );
  });
}
