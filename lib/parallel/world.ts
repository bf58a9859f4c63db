/**
 * The processes a run trains with: one (no MPI launcher: nothing is loaded) or the ranks of an MPI job. Training
 * code talks to a {@linkcode World} and does not care which.
 *
 * @module
 */

import { candidateLibraries, detectLaunch, MpiError, openMpi } from "./mpi.ts";
import type { MpiLaunch, MpiLibrary } from "./mpi.ts";
import { EXIT, ToolError } from "../errors.ts";

/**
 * What else a waiting collective watches (see {@linkcode World.watch}): how long it may wait, and whether the
 * session was asked to stop meanwhile.
 */
export interface StallWatch {
  /**
   * Seconds a collective may wait for the other ranks: 0 never gives up; undefined: 10 times the longest wait or
   * gap between two collectives measured so far, at least 5 minutes (10 minutes before the first step).
   */
  timeoutS?: number;
  /** When the session was asked to stop (`performance.now()`), or undefined. */
  stopAskedAt(): number | undefined;
  /** The last step's time (ms): a rank that answers comes within about one step. */
  stepMs(): number;
}

/**
 * A collective given up: another rank did not come within the timeout, or a stop was asked for while it waited.
 * The weights are those after the last completed all-reduce on every rank, so rank 0 saves them and the run stops
 * resumably (exit status 3). No MPI call may follow: the process exits without MPI_Finalize (the launcher ends
 * the rest of the job).
 */
export class CollectiveStall extends ToolError {
  /** Why the wait ended: the timeout, a stop asked for, or a rank on this node whose process has ended. */
  readonly why: "timeout" | "stop" | "gone";
  /** A stall with the given message. */
  constructor(message: string, why: "timeout" | "stop" | "gone") {
    super(message, EXIT.stopped);
    this.name = "CollectiveStall";
    this.why = why;
  }
}

/** The processes of a run and the collective operations between them. */
export interface World {
  /** This process's rank (0 writes the run's files). */
  readonly rank: number;
  /** Processes. */
  readonly size: number;
  /** Ranks on this node (for threads per rank). */
  readonly localSize: number;
  /** Nodes (ranks / ranks per node). */
  readonly nodes: number;
  /** What carries it: `single process`, `MPICH ABI (libmpich.so.12)`, `Open MPI (libmpi.so.40)`. */
  readonly description: string;
  /** A collective was given up ({@linkcode CollectiveStall}): no MPI call may follow, not even MPI_Finalize. */
  readonly broken: boolean;
  /** Sums `buf` over all ranks, in place (float32); `what`: the collective's name in messages. */
  allreduceSum(buf: Float32Array, what?: string): Promise<void>;
  /** Sums `buf` over all ranks, in place (float64). */
  allreduceSum64(buf: Float64Array, what?: string): Promise<void>;
  /** Maximum of `buf` over all ranks, in place (float64). */
  allreduceMax64(buf: Float64Array, what?: string): Promise<void>;
  /** Copies `buf` from `root` to every rank. */
  bcast(buf: Uint8Array, root: number, what?: string): Promise<void>;
  /** Waits for every rank. */
  barrier(what?: string): Promise<void>;
  /** Sets what a waiting collective watches besides the other ranks (a timeout, a stop asked for). */
  watch(w: StallWatch | undefined): void;
  /** Ends every rank of the job with `code` (a rank that fails takes the job down). */
  abort(code: number): void;
  /** Leaves MPI (before the process exits). */
  finalize(): void;
}

const done = () => Promise.resolve();

/** One process: collectives are the identity. */
export const SINGLE: World = {
  rank: 0,
  size: 1,
  localSize: 1,
  nodes: 1,
  description: "single process",
  broken: false,
  allreduceSum: done,
  allreduceSum64: done,
  allreduceMax64: done,
  bcast: done,
  barrier: done,
  watch: () => {},
  abort: () => {},
  finalize: () => {},
};

/** MPI_THREAD_SERIALIZED: any thread may call MPI, one at a time (the collectives run on a helper thread). */
const THREAD_SERIALIZED = 2;
/** How often a waiting collective looks at the clock and at a stop asked for, ms. */
const POLL_MS = 100;
/** The least time a collective waits after a stop was asked for before it is given up, ms. */
const STOP_GRACE_MS = 2000;

class MpiWorld implements World {
  readonly rank: number;
  readonly size: number;
  readonly localSize: number;
  readonly nodes: number;
  readonly description: string;
  #lib: MpiLibrary;
  #recv32 = new Float32Array(0);
  #recv64 = new Float64Array(0);
  #finalized = false;
  /** Collectives run on a helper thread (false: the library gives no MPI_THREAD_SERIALIZED; they block). */
  #threaded: boolean;
  #broken = false;
  #watch?: StallWatch;
  /** The longest wait in a collective and the longest gap between two, ms (for the automatic timeout). */
  #longestMs = 0;
  #lastEnd = 0;
  #steps = 0;
  /** Every rank's process id and host (for naming the rank that does not answer). */
  #peers: { pid: number; host: string }[] = [];

  constructor(lib: MpiLibrary, launch: MpiLaunch) {
    this.#lib = lib;
    const provided = new Int32Array(1);
    const rc = lib.fn.MPI_Init_thread(null, null, THREAD_SERIALIZED, provided);
    if (rc !== 0) throw new MpiError(`MPI_Init_thread failed (error ${rc}) with ${lib.path}`);
    this.#threaded = provided[0] >= THREAD_SERIALIZED;
    const r = new Int32Array(1), s = new Int32Array(1);
    lib.fn.MPI_Comm_rank(lib.handles.comm, r);
    lib.fn.MPI_Comm_size(lib.handles.comm, s);
    this.rank = r[0];
    this.size = s[0];
    this.localSize = Math.max(1, Math.min(launch.localSize ?? this.size, this.size));
    this.nodes = Math.max(1, Math.ceil(this.size / this.localSize));
    this.description = `${lib.abi === "openmpi" ? "Open MPI" : "MPICH ABI"} (${lib.path})`;
    this.#peers = this.#exchangePeers();
    this.#lastEnd = performance.now();
  }

  get broken(): boolean {
    return this.#broken;
  }

  watch(w: StallWatch | undefined): void {
    this.#watch = w;
  }

  /** Every rank's pid and host name, by one all-gather of 128 bytes each (blocking: at start-up). */
  #exchangePeers(): { pid: number; host: string }[] {
    const W = 128, enc = new TextEncoder(), dec = new TextDecoder();
    let host = "?";
    try {
      host = Deno.hostname();
    } catch {
      // no sys permission
    }
    const mine = new Uint8Array(W);
    mine.set(enc.encode(`${Deno.pid} ${host}`).subarray(0, W));
    const all = new Uint8Array(W * this.size), h = this.#lib.handles;
    const rc = this.#lib.fn.MPI_Allgather(mine, W, h.byte, all, W, h.byte, h.comm);
    if (rc !== 0) return [];
    return Array.from({ length: this.size }, (_, i) => {
      const text = dec.decode(all.subarray(i * W, (i + 1) * W)).replace(/\0+$/, "");
      const at = text.indexOf(" ");
      return { pid: Number(text.slice(0, at)), host: text.slice(at + 1) };
    });
  }

  #check(rc: number, what: string): void {
    if (rc !== 0) throw new MpiError(`${what} failed with MPI error ${rc} (rank ${this.rank})`);
  }

  /**
   * Test hook for the rank-failure tests: `GINO_GW_TEST_KILL_COLLECTIVE=<rank>:<n>` SIGKILLs that rank as it enters
   * its n-th collective call (all-reduce, broadcast, barrier), while the other ranks wait inside theirs.
   */
  #testKill(): void {
    if (this.#killAt === undefined) {
      let v: string | undefined;
      try {
        v = Deno.env.get("GINO_GW_TEST_KILL_COLLECTIVE");
      } catch {
        v = undefined; // no env permission
      }
      const m = v ? /^(\d+):(\d+)$/.exec(v) : null;
      this.#killAt = m && Number(m[1]) === this.rank ? Number(m[2]) : 0;
    }
    if (this.#killAt > 0 && ++this.#collectives === this.#killAt) Deno.kill(Deno.pid, "SIGKILL");
  }
  #killAt?: number;
  #collectives = 0;

  /** The automatic timeout, ms: 10 x the longest wait or gap so far, at least 5 min (10 min before a step). */
  #timeoutMs(): number {
    const given = this.#watch?.timeoutS;
    if (given !== undefined) return given > 0 ? given * 1000 : Infinity;
    return Math.max(this.#steps > 0 ? 300_000 : 600_000, 10 * this.#longestMs);
  }

  /** Notes a completed training step (the automatic timeout shortens after the first). */
  noteStep(): void {
    this.#steps++;
  }

  /**
   * Runs one collective: on the helper thread, watched (timeout, a stop asked for), or blocking where the library
   * has no MPI_THREAD_SERIALIZED.
   */
  async #run(what: string, blocking: () => number, threaded: () => Promise<number>): Promise<void> {
    if (this.#broken) throw new CollectiveStall(`${what}: an earlier collective was given up`, "stop");
    this.#testKill();
    const start = performance.now();
    this.#longestMs = Math.max(this.#longestMs, start - this.#lastEnd);
    if (!this.#threaded) {
      this.#check(blocking(), what);
      this.#noteEnd(start);
      return;
    }
    let rc: number | undefined, looked = start;
    const call = threaded().then((v) => (rc = v));
    while (rc === undefined) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([call, new Promise((r) => (timer = setTimeout(r, POLL_MS)))]);
      clearTimeout(timer);
      if (rc !== undefined) break;
      const now = performance.now(), waited = now - start;
      // a rank on this node whose process has ended never comes (a launcher may leave the job to its timeout)
      if (waited > 1000 && now - looked > 1000) {
        looked = now;
        if (
          this.#peers.some((p, r) =>
            r !== this.rank && this.#local(p) && processState(p.pid).startsWith("gone")
          )
        ) {
          this.#broken = true;
          throw new CollectiveStall(this.#stallText(what, waited, "gone"), "gone");
        }
      }
      if (waited > this.#timeoutMs()) {
        this.#broken = true;
        throw new CollectiveStall(this.#stallText(what, waited, "timeout"), "timeout");
      }
      // a stop asked for (SIGTERM, the walltime's warning) while waiting: rank 0 saves without the others once
      // they have had time to come (a rank that answers is at most about one step away)
      const asked = this.#watch?.stopAskedAt();
      const grace = Math.max(STOP_GRACE_MS, 2 * (this.#watch?.stepMs() ?? 0));
      if (this.rank === 0 && asked !== undefined && now - Math.max(asked, start) > grace) {
        this.#broken = true;
        throw new CollectiveStall(this.#stallText(what, waited, "stop"), "stop");
      }
    }
    this.#check(rc, what);
    this.#noteEnd(start);
  }

  #noteEnd(start: number): void {
    const now = performance.now();
    this.#longestMs = Math.max(this.#longestMs, now - start);
    this.#lastEnd = now;
  }

  /** True for a rank on this node (whose process this one can see). */
  #local(p: { host: string }): boolean {
    return p.host === this.#peers[this.rank]?.host;
  }

  /** Names the ranks that do not answer, as far as this node can see (the state of a process on it). */
  #stallText(what: string, waitedMs: number, why: "timeout" | "stop" | "gone"): string {
    const me = this.#peers[this.rank];
    const seen: string[] = [], elsewhere: number[] = [];
    this.#peers.forEach((p, r) => {
      if (r === this.rank) return;
      if (!me || p.host !== me.host) {
        elsewhere.push(r);
        return;
      }
      const state = processState(p.pid);
      if (state !== "running") seen.push(`rank ${r} (pid ${p.pid} on ${p.host}) is ${state}`);
    });
    const who = seen.length
      ? seen.join("; ")
      : elsewhere.length
      ? `one of rank(s) ${elsewhere.join(", ")} (on other nodes: ${
        [...new Set(elsewhere.map((r) => this.#peers[r]?.host))].join(", ")
      }) has not come`
      : `another rank has not come`;
    const secs = (waitedMs / 1000).toFixed(0);
    const t = this.#watch?.timeoutS;
    return why === "timeout"
      ? `rank ${this.rank}: ${who}: no answer in ${what} for ${secs} s (--collective-timeout ${
        t === undefined ? `auto, ${(this.#timeoutMs() / 1000).toFixed(0)} s` : `${t}s`
      })`
      : why === "gone"
      ? `rank ${this.rank}: ${who}: waited ${secs} s in ${what}`
      : `rank ${this.rank}: ${who}: asked to stop while waiting ${secs} s in ${what}`;
  }

  async allreduceSum(buf: Float32Array, what = "an all-reduce"): Promise<void> {
    if (this.#recv32.length < buf.length) this.#recv32 = new Float32Array(buf.length);
    const recv = this.#recv32.subarray(0, buf.length), h = this.#lib.handles, f = this.#lib.fn;
    await this.#run(
      what,
      () => f.MPI_Allreduce(buf, recv, buf.length, h.float, h.sum, h.comm),
      () => f.MPI_Allreduce_async(buf, recv, buf.length, h.float, h.sum, h.comm),
    );
    buf.set(recv);
  }

  async #reduce64(buf: Float64Array, op: bigint, what: string): Promise<void> {
    if (this.#recv64.length < buf.length) this.#recv64 = new Float64Array(buf.length);
    const recv = this.#recv64.subarray(0, buf.length), h = this.#lib.handles, f = this.#lib.fn;
    await this.#run(
      what,
      () => f.MPI_Allreduce(buf, recv, buf.length, h.double, op, h.comm),
      () => f.MPI_Allreduce_async(buf, recv, buf.length, h.double, op, h.comm),
    );
    buf.set(recv);
  }

  allreduceSum64(buf: Float64Array, what = "an all-reduce"): Promise<void> {
    return this.#reduce64(buf, this.#lib.handles.sum, what);
  }

  allreduceMax64(buf: Float64Array, what = "an all-reduce"): Promise<void> {
    return this.#reduce64(buf, this.#lib.handles.max, what);
  }

  bcast(buf: Uint8Array, root: number, what = "a broadcast"): Promise<void> {
    const h = this.#lib.handles, f = this.#lib.fn;
    return this.#run(
      what,
      () => f.MPI_Bcast(buf, buf.length, h.byte, root, h.comm),
      () => f.MPI_Bcast_async(buf, buf.length, h.byte, root, h.comm),
    );
  }

  barrier(what = "a barrier"): Promise<void> {
    const h = this.#lib.handles, f = this.#lib.fn;
    return this.#run(what, () => f.MPI_Barrier(h.comm), () => f.MPI_Barrier_async(h.comm));
  }

  abort(code: number): void {
    if (this.#broken) return; // a helper thread is inside MPI: the process exits instead
    this.#lib.fn.MPI_Abort(this.#lib.handles.comm, code);
  }

  finalize(): void {
    if (this.#finalized || this.#broken) return;
    this.#finalized = true;
    this.#lib.fn.MPI_Finalize();
  }
}

/** What a process on this node is doing, from /proc: running, stopped (SIGSTOP), gone, ... */
function processState(pid: number): string {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? "gone (its process has ended)" : "running";
  }
  const state = stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3);
  switch (state) {
    case "T":
    case "t":
      return "stopped (SIGSTOP or a debugger)";
    case "Z":
    case "X":
      return "gone (its process has ended)";
    case "D":
      return "stuck in uninterruptible I/O (a hung file system?)";
    default:
      return "running";
  }
}

/** Notes a completed training step on this process's world (the automatic collective timeout shortens after it). */
export function noteStep(world: World): void {
  if (world instanceof MpiWorld) world.noteStep();
}

let current: World = SINGLE;
let loaded: string | undefined;

/**
 * The world of this process: under an MPI launcher, MPI is loaded and initialised (once); otherwise nothing is
 * loaded and the run is a single process.
 */
export function initWorld(env: Record<string, string | undefined> = envOrEmpty()): World {
  if (current !== SINGLE) return current;
  const launch = detectLaunch(env);
  if (!launch || launch.size <= 1 && launch.family !== "unknown") return SINGLE;
  const lib = openMpi(candidateLibraries(launch.family, env.GINO_GW_MPI_LIB));
  loaded = lib.path;
  current = new MpiWorld(lib, launch);
  return current;
}

/** The world {@linkcode initWorld} set up (a single process until then). */
export function currentWorld(): World {
  return current;
}

/** The MPI library this process loaded, if any. */
export function mpiLibraryLoaded(): string | undefined {
  return loaded;
}

function envOrEmpty(): Record<string, string | undefined> {
  try {
    return Deno.env.toObject();
  } catch {
    return {}; // no env permission: not under MPI as far as we can tell
  }
}

/** A string sent from `root` to every rank. */
export async function bcastString(world: World, s: string, root = 0, what = "a broadcast"): Promise<string> {
  if (world.size === 1) return s;
  const len = new Float64Array([world.rank === root ? new TextEncoder().encode(s).length : 0]);
  await world.allreduceMax64(len, what);
  const buf = new Uint8Array(len[0]);
  if (world.rank === root) buf.set(new TextEncoder().encode(s));
  await world.bcast(buf, root, what);
  return new TextDecoder().decode(buf);
}

/** True on every rank when `ok` is true on every rank. */
export async function allAgree(world: World, ok: boolean, what = "an agreement"): Promise<boolean> {
  if (world.size === 1) return ok;
  const flag = new Float64Array([ok ? 0 : 1]);
  await world.allreduceMax64(flag, what);
  return flag[0] === 0;
}
