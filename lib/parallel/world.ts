/**
 * The processes a run trains with: one (no MPI launcher: nothing is loaded) or the ranks of an MPI job. Training
 * code talks to a {@linkcode World} and does not care which.
 *
 * @module
 */

import { candidateLibraries, detectLaunch, MpiError, openMpi } from "./mpi.ts";
import type { MpiLaunch, MpiLibrary } from "./mpi.ts";

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
  /** Sums `buf` over all ranks, in place (float32). */
  allreduceSum(buf: Float32Array): void;
  /** Sums `buf` over all ranks, in place (float64). */
  allreduceSum64(buf: Float64Array): void;
  /** Maximum of `buf` over all ranks, in place (float64). */
  allreduceMax64(buf: Float64Array): void;
  /** Copies `buf` from `root` to every rank. */
  bcast(buf: Uint8Array, root: number): void;
  /** Waits for every rank. */
  barrier(): void;
  /** Ends every rank of the job with `code` (a rank that fails takes the job down). */
  abort(code: number): void;
  /** Leaves MPI (before the process exits). */
  finalize(): void;
}

/** One process: collectives are the identity. */
export const SINGLE: World = {
  rank: 0,
  size: 1,
  localSize: 1,
  nodes: 1,
  description: "single process",
  allreduceSum: () => {},
  allreduceSum64: () => {},
  allreduceMax64: () => {},
  bcast: () => {},
  barrier: () => {},
  abort: () => {},
  finalize: () => {},
};

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

  constructor(lib: MpiLibrary, launch: MpiLaunch) {
    this.#lib = lib;
    const provided = new Int32Array(1);
    const rc = lib.fn.MPI_Init_thread(null, null, 1, /* MPI_THREAD_FUNNELED */ provided);
    if (rc !== 0) throw new MpiError(`MPI_Init_thread failed (error ${rc}) with ${lib.path}`);
    const r = new Int32Array(1), s = new Int32Array(1);
    lib.fn.MPI_Comm_rank(lib.handles.comm, r);
    lib.fn.MPI_Comm_size(lib.handles.comm, s);
    this.rank = r[0];
    this.size = s[0];
    this.localSize = Math.max(1, Math.min(launch.localSize ?? this.size, this.size));
    this.nodes = Math.max(1, Math.ceil(this.size / this.localSize));
    this.description = `${lib.abi === "openmpi" ? "Open MPI" : "MPICH ABI"} (${lib.path})`;
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

  allreduceSum(buf: Float32Array): void {
    this.#testKill();
    if (this.#recv32.length < buf.length) this.#recv32 = new Float32Array(buf.length);
    const recv = this.#recv32.subarray(0, buf.length), h = this.#lib.handles;
    this.#check(this.#lib.fn.MPI_Allreduce(buf, recv, buf.length, h.float, h.sum, h.comm), "MPI_Allreduce");
    buf.set(recv);
  }

  #reduce64(buf: Float64Array, op: bigint): void {
    this.#testKill();
    if (this.#recv64.length < buf.length) this.#recv64 = new Float64Array(buf.length);
    const recv = this.#recv64.subarray(0, buf.length), h = this.#lib.handles;
    this.#check(this.#lib.fn.MPI_Allreduce(buf, recv, buf.length, h.double, op, h.comm), "MPI_Allreduce");
    buf.set(recv);
  }

  allreduceSum64(buf: Float64Array): void {
    this.#reduce64(buf, this.#lib.handles.sum);
  }

  allreduceMax64(buf: Float64Array): void {
    this.#reduce64(buf, this.#lib.handles.max);
  }

  bcast(buf: Uint8Array, root: number): void {
    this.#testKill();
    const h = this.#lib.handles;
    this.#check(this.#lib.fn.MPI_Bcast(buf, buf.length, h.byte, root, h.comm), "MPI_Bcast");
  }

  barrier(): void {
    this.#testKill();
    this.#check(this.#lib.fn.MPI_Barrier(this.#lib.handles.comm), "MPI_Barrier");
  }

  abort(code: number): void {
    this.#lib.fn.MPI_Abort(this.#lib.handles.comm, code);
  }

  finalize(): void {
    if (this.#finalized) return;
    this.#finalized = true;
    this.#lib.fn.MPI_Finalize();
  }
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
export function bcastString(world: World, s: string, root = 0): string {
  if (world.size === 1) return s;
  const len = new Float64Array([world.rank === root ? new TextEncoder().encode(s).length : 0]);
  world.allreduceMax64(len);
  const buf = new Uint8Array(len[0]);
  if (world.rank === root) buf.set(new TextEncoder().encode(s));
  world.bcast(buf, root);
  return new TextDecoder().decode(buf);
}

/** True on every rank when `ok` is true on every rank. */
export function allAgree(world: World, ok: boolean): boolean {
  const flag = new Float64Array([ok ? 0 : 1]);
  world.allreduceMax64(flag);
  return flag[0] === 0;
}
