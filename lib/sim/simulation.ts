/**
 * A deterministic simulation of N nodes in one process: each node has its own actor
 * system, a view of one virtual clock, an end of a simulated network, and a durable "disk"
 * that survives crashes (what survives is the disk's business: the storage layer's
 * MemoryDisk loses unsynced writes). One seed determines the whole run; `traceHash()`
 * proves it.
 */
import { createHash, type Hash } from 'node:crypto';
import type { LinkFaults } from '../../transports/memory/faults.js';
import { MemoryNetwork } from '../../transports/memory/memory-network.js';
import { ActorSystem } from '../actor-system.js';
import { type Logger, silentLogger } from '../logger.js';
import { Random } from '../random.js';
import { NodeClock } from './node-clock.js';
import { VirtualClock } from './virtual-clock.js';

/** Anything a node keeps across crashes; `crash()` is called when its node crashes. */
export interface SimDisk {
  crash?(): void;
}

export interface SimNode<D extends SimDisk = SimDisk> {
  readonly id: string;
  readonly system: ActorSystem;
  readonly clock: NodeClock;
  readonly disk: D;
  /** Increments on every restart. */
  readonly incarnation: number;
}

export interface SimulationOptions<D extends SimDisk> {
  /**
   * The seed of everything random in the run. Defaults to SYNOD_SEED or a fixed value.
   * SYNOD_SIM_SEED, when set, overrides it (see `pinnedSimSeed`).
   */
  seed?: number;
  nodes: readonly string[];
  faults?: LinkFaults;
  /** Creates a node's disk once; it survives the node's crashes. */
  createDisk?: (nodeId: string) => D;
  /** Called every time a node (re)starts: spawn its actors here. */
  setup?: (node: SimNode<D>) => void | Promise<void>;
  logger?: Logger;
  /** Round-trip local sends through the codec too (default true). */
  serializeLocal?: boolean;
  /** Stop a run that takes more than this many steps (default 50 million). */
  maxSteps?: number;
}

/**
 * A failed simulated run. The message ends with the run's seed and how to replay it; the
 * original error (an invariant an `afterEachStep` check threw, an exception inside a step)
 * is `cause`.
 */
export class SimulationError extends Error {
  constructor(
    message: string,
    readonly seed: number,
    options?: { cause?: unknown },
  ) {
    super(`${message} (${replayHint(seed)})`, options);
    this.name = 'SimulationError';
  }
}

/**
 * How to replay a run of `seed`. Tests often derive their simulations' seeds from a base
 * (`seedFromEnv(21) + k`), so SYNOD_SEED=<seed> would not give this run back; SYNOD_SIM_SEED
 * gives every Simulation in the process exactly this seed.
 */
export function replayHint(seed: number): string {
  return `simulation seed ${seed}; replay with SYNOD_SIM_SEED=${seed}`;
}

function integerEnv(name: string): number | undefined {
  const s = process.env[name];
  if (s === undefined || s === '') return undefined;
  const n = Number(s);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer, got "${s}"`);
  return n;
}

/** The base seed of a test file: SYNOD_SEED if set, else `fallback`. */
export function seedFromEnv(fallback: number): number {
  return integerEnv('SYNOD_SEED') ?? fallback;
}

/**
 * SYNOD_SIM_SEED, if set: the seed every Simulation uses, whatever seed it was given (the
 * value a failed run prints). Run the failing test alone with it; other simulations in the
 * same process get the same seed.
 */
export function pinnedSimSeed(): number | undefined {
  return integerEnv('SYNOD_SIM_SEED');
}

export class Simulation<D extends SimDisk = SimDisk> {
  readonly seed: number;
  readonly clock: VirtualClock;
  readonly random: Random;
  readonly network: MemoryNetwork;
  private readonly nodesById = new Map<string, SimNode<D> & { incarnation: number }>();
  private readonly disks = new Map<string, D>();
  private readonly createDisk: (nodeId: string) => D;
  private setupFn: ((node: SimNode<D>) => void | Promise<void>) | undefined;
  private readonly logger: Logger;
  private readonly serializeLocal: boolean;
  private readonly hooks: (() => void)[] = [];
  private readonly hash: Hash = createHash('sha256');
  private steps = 0;
  private readonly maxSteps: number;
  private readonly nodeIds: readonly string[];
  private readonly down = new Set<string>();
  private idCounter = 0;

  constructor(options: SimulationOptions<D>) {
    this.seed = pinnedSimSeed() ?? options.seed ?? seedFromEnv(1);
    this.random = new Random(this.seed);
    this.clock = new VirtualClock();
    this.nodeIds = [...options.nodes];
    this.createDisk = options.createDisk ?? (() => ({}) as D);
    this.setupFn = options.setup;
    this.logger = options.logger ?? silentLogger;
    this.serializeLocal = options.serializeLocal ?? true;
    this.maxSteps = options.maxSteps ?? 50_000_000;
    this.network = new MemoryNetwork({
      clock: this.clock,
      random: this.random.fork(),
      ...(options.faults ? { faults: options.faults } : {}),
      onDeliver: (from, to, bytes) => {
        this.hash.update(`d|${this.clock.now()}|${from}|${to}|`);
        this.hash.update(bytes);
      },
    });
  }

  /** Sets the function that spawns a node's actors (on start and on every restart). */
  onStart(setup: (node: SimNode<D>) => void | Promise<void>): this {
    this.setupFn = setup;
    return this;
  }

  /** Calls `check` after every step (delivered message, fired timer); it should throw on a violation. */
  afterEachStep(check: () => void): this {
    this.hooks.push(check);
    return this;
  }

  /** Starts every node. */
  async start(): Promise<void> {
    for (const id of this.nodeIds) await this.boot(id);
    await this.flush();
  }

  node(id: string): SimNode<D> {
    const n = this.nodesById.get(id);
    if (!n) throw new Error(`no simulated node "${id}"`);
    return n;
  }

  system(id: string): ActorSystem {
    return this.node(id).system;
  }

  disk(id: string): D {
    let d = this.disks.get(id);
    if (!d) {
      d = this.createDisk(id);
      this.disks.set(id, d);
    }
    return d;
  }

  nodes(): readonly string[] {
    return this.nodeIds;
  }

  isUp(id: string): boolean {
    return !this.down.has(id);
  }

  upNodes(): string[] {
    return this.nodeIds.filter((n) => !this.down.has(n));
  }

  /** The node dies at once: timers stop, in-flight messages to it are lost, the disk crashes. */
  crash(id: string): void {
    const n = this.node(id);
    if (this.down.has(id)) return;
    this.down.add(id);
    this.hash.update(`crash|${this.clock.now()}|${id}`);
    n.clock.kill();
    this.network.disconnect(id);
    this.disks.get(id)?.crash?.();
  }

  /** Boots a crashed node again with a new actor system on the same disk. */
  async restart(id: string): Promise<void> {
    if (!this.down.has(id)) throw new Error(`node "${id}" is not down`);
    this.down.delete(id);
    this.hash.update(`restart|${this.clock.now()}|${id}`);
    await this.boot(id);
    await this.flush();
  }

  /** Freezes the node (SIGSTOP): timers and deliveries wait until `resume`. */
  pause(id: string): void {
    this.node(id).clock.pause();
    this.network.pause(id);
  }

  resume(id: string): void {
    this.node(id).clock.resume();
    this.network.resume(id);
  }

  /**
   * Runs the simulation for `ms` of virtual time.
   *
   * Between two steps the event loop turns once (a `setImmediate`), so every promise
   * continuation a step released (storage acks, async handlers, clients) runs before the
   * next step. The turns are driven by callbacks rather than by awaiting a promise per step:
   * the order of steps and continuations is the same, but a run creates one promise instead
   * of several per step, which matters under async hooks (tap tracks every promise).
   */
  runFor(ms: number): Promise<void> {
    const end = this.clock.now() + ms;
    return new Promise<void>((resolve, reject) => {
      const finish = () => {
        this.clock.advanceTo(end);
        resolve();
      };
      const turn = () => {
        let more: boolean;
        try {
          more = this.stepOnce(end);
        } catch (err) {
          reject(this.failed(err));
          return;
        }
        setImmediate(more ? turn : finish);
      };
      setImmediate(turn);
    });
  }

  /**
   * Runs until `predicate` holds (checked after every step), or `timeout` ms of virtual time
   * pass. Returns whether the predicate held. Driven like `runFor`: one event-loop turn
   * between a step and the predicate that looks at its outcome.
   */
  runUntil(predicate: () => boolean, options: { timeout: number }): Promise<boolean> {
    const end = this.clock.now() + options.timeout;
    return new Promise<boolean>((resolve, reject) => {
      // after an event-loop turn: does the predicate hold? if not, take the next step
      const afterTurn = () => {
        try {
          if (predicate()) {
            resolve(true);
            return;
          }
          if (this.stepOnce(end)) {
            setImmediate(afterTurn);
            return;
          }
          this.clock.advanceTo(end);
          resolve(predicate());
        } catch (err) {
          reject(this.failed(err));
        }
      };
      setImmediate(afterTurn);
    });
  }

  /** Runs until the promise settles (or `timeout` ms of virtual time pass, then rejects). */
  async await<T>(promise: Promise<T>, options: { timeout: number }): Promise<T> {
    let settled = false;
    let value: T | undefined;
    let error: unknown;
    promise.then(
      (v) => {
        settled = true;
        value = v;
      },
      (e: unknown) => {
        settled = true;
        error = e;
      },
    );
    const ok = await this.runUntil(() => settled, options);
    if (!ok)
      throw new SimulationError(`promise did not settle within ${options.timeout} ms`, this.seed);
    if (error !== undefined) throw error;
    return value as T;
  }

  /** Steps taken so far (delivered messages, timers, dispatcher turns). */
  stepCount(): number {
    return this.steps;
  }

  /** A hash of every delivered message and event so far: same seed ⇒ same hash. */
  traceHash(): string {
    return this.hash.copy().digest('hex');
  }

  /** Records an application-level event in the trace (e.g. a client operation). */
  trace(text: string): void {
    this.hash.update(`t|${this.clock.now()}|${text}`);
  }

  fail(message: string): never {
    throw new SimulationError(message, this.seed);
  }

  /** An error out of a step, a check or a predicate, with the seed that replays the run. */
  private failed(err: unknown): SimulationError {
    if (err instanceof SimulationError) return err;
    const what = err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    return new SimulationError(
      `at ${this.clock.now()} ms (step ${this.steps}): ${what}`,
      this.seed,
      {
        cause: err,
      },
    );
  }

  private stepOnce(limit: number): boolean {
    const label = this.clock.step(limit);
    if (label === undefined) return false;
    this.steps++;
    if (this.steps > this.maxSteps) this.fail(`simulation exceeded ${this.maxSteps} steps`);
    this.hash.update(`s|${this.clock.now()}|${label}`);
    for (const h of this.hooks) h();
    return true;
  }

  /** Lets every pending promise continuation run (storage acks, async handlers). */
  private async flush(): Promise<void> {
    await new Promise<void>((resolve) => setImmediate(resolve));
  }

  private async boot(id: string): Promise<void> {
    const prev = this.nodesById.get(id);
    const incarnation = prev ? prev.incarnation + 1 : 1;
    const clock = new NodeClock(this.clock, id);
    const transport = this.network.connect(id, clock);
    let idSeq = 0;
    const system = new ActorSystem({
      nodeId: id,
      clock,
      random: this.random.fork(),
      transport,
      logger: this.logger,
      serializeLocal: this.serializeLocal,
      idGenerator: () => `${id}.${incarnation}.${idSeq++}.${this.idCounter++}`,
    });
    const node = { id, system, clock, disk: this.disk(id), incarnation };
    this.nodesById.set(id, node);
    await this.setupFn?.(node);
  }
}
