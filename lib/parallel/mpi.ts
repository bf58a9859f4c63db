/**
 * MPI through `Deno.dlopen`, no C shim: the few calls data-parallel training needs (init, rank and size,
 * all-reduce, broadcast, barrier, abort, finalize) on the library of the launcher that started this process.
 *
 * Two ABIs: the MPICH ABI (MPICH, Intel MPI, Cray MPICH, MVAPICH: `libmpi.so.12`, Debian's `libmpich.so.12`), whose
 * handles are integers (`MPI_COMM_WORLD` = 0x44000000, ...), and Open MPI (`libmpi.so.40`), whose handles are the
 * addresses of its global objects (`ompi_mpi_comm_world`, ...), found with `dlsym`. The library is first opened
 * with `RTLD_GLOBAL` (Open MPI's plugins resolve their symbols against it).
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** A launch by an MPI launcher, as its environment says. */
export interface MpiLaunch {
  /** This process's rank. */
  rank: number;
  /** Processes in the job. */
  size: number;
  /** Ranks on this node, when the launcher says. */
  localSize?: number;
  /** The ABI the launcher's variables point to. */
  family: "mpich" | "openmpi" | "unknown";
}

const num = (
  v: string | undefined,
) => (v === undefined || v === "" || !/^\d+$/.test(v) ? undefined : Number(v));

/**
 * The MPI launch this process belongs to, from the launcher's environment (`PMI_RANK`/`PMI_SIZE`: MPICH's Hydra and
 * Intel MPI; `OMPI_COMM_WORLD_RANK`/`..._SIZE`: Open MPI; `PMIX_RANK`: PMIx launchers), or undefined.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { detectLaunch } from "./mpi.ts";
 * assert.deepEqual(detectLaunch({ PMI_RANK: "1", PMI_SIZE: "4", MPI_LOCALNRANKS: "2" }), {
 *   rank: 1, size: 4, localSize: 2, family: "mpich",
 * });
 * assert.equal(detectLaunch({}), undefined);
 * ```
 */
export function detectLaunch(env: Record<string, string | undefined>): MpiLaunch | undefined {
  const ompi = num(env.OMPI_COMM_WORLD_RANK);
  if (ompi !== undefined) {
    return {
      rank: ompi,
      size: num(env.OMPI_COMM_WORLD_SIZE) ?? 1,
      localSize: num(env.OMPI_COMM_WORLD_LOCAL_SIZE),
      family: "openmpi",
    };
  }
  const pmi = num(env.PMI_RANK);
  if (pmi !== undefined) {
    return { rank: pmi, size: num(env.PMI_SIZE) ?? 1, localSize: num(env.MPI_LOCALNRANKS), family: "mpich" };
  }
  const pmix = num(env.PMIX_RANK);
  if (pmix !== undefined) return { rank: pmix, size: num(env.PMIX_SIZE) ?? 0, family: "unknown" };
  return undefined;
}

/** The libraries to try, best first: `GINO_GW_MPI_LIB`, else by the launcher's family. */
export function candidateLibraries(family: MpiLaunch["family"], override?: string): string[] {
  if (override) return [override];
  const mpich = ["libmpi.so.12", "libmpich.so.12"], ompi = ["libmpi.so.40"];
  const all = family === "openmpi" ? [...ompi, ...mpich] : [...mpich, ...ompi];
  return Deno.build.os === "darwin" ? ["libmpi.dylib", "libmpi.40.dylib", "libmpi.12.dylib"] : all;
}

/** The MPI error of a bad setup: what is missing and how to fix it. */
export class MpiError extends ToolError {
  /** An error with the given message (exit status 2). */
  constructor(message: string) {
    super(message);
    this.name = "MpiError";
  }
}

/**
 * The calls. The collectives come twice: as they are, and `..._async`: run on a helper thread (Deno's
 * `nonblocking` foreign calls), one at a time (MPI_THREAD_SERIALIZED), so that the event loop (signals, timers)
 * goes on while a collective waits for a rank that does not come.
 */
const SYMBOLS = {
  MPI_Init_thread: { parameters: ["pointer", "pointer", "i32", "buffer"], result: "i32" },
  MPI_Comm_rank: { parameters: ["usize", "buffer"], result: "i32" },
  MPI_Comm_size: { parameters: ["usize", "buffer"], result: "i32" },
  MPI_Allreduce: { parameters: ["buffer", "buffer", "i32", "usize", "usize", "usize"], result: "i32" },
  MPI_Bcast: { parameters: ["buffer", "i32", "usize", "i32", "usize"], result: "i32" },
  MPI_Barrier: { parameters: ["usize"], result: "i32" },
  MPI_Allgather: {
    parameters: ["buffer", "i32", "usize", "buffer", "i32", "usize", "usize"],
    result: "i32",
  },
  MPI_Allreduce_async: {
    name: "MPI_Allreduce",
    parameters: ["buffer", "buffer", "i32", "usize", "usize", "usize"],
    result: "i32",
    nonblocking: true,
  },
  MPI_Bcast_async: {
    name: "MPI_Bcast",
    parameters: ["buffer", "i32", "usize", "i32", "usize"],
    result: "i32",
    nonblocking: true,
  },
  MPI_Barrier_async: { name: "MPI_Barrier", parameters: ["usize"], result: "i32", nonblocking: true },
  MPI_Abort: { parameters: ["usize", "i32"], result: "i32" },
  MPI_Finalize: { parameters: [], result: "i32" },
} as const;

/** Handles: MPI_Comm, MPI_Datatype and MPI_Op values as the library's ABI passes them (integers or addresses). */
interface Handles {
  comm: bigint;
  float: bigint;
  double: bigint;
  byte: bigint;
  sum: bigint;
  max: bigint;
}

const MPICH_HANDLES: Handles = {
  comm: 0x44000000n,
  float: 0x4c00040an,
  double: 0x4c00080bn,
  byte: 0x4c00010dn,
  sum: 0x58000003n,
  max: 0x58000001n,
};

const cstr = (s: string) => new TextEncoder().encode(s + "\0");

/** libc's dlopen and dlsym (glibc 2.34+ has them in libc; older ones in libdl). */
function openLibdl() {
  const fns = {
    dlopen: { parameters: ["buffer", "i32"], result: "pointer" },
    dlsym: { parameters: ["pointer", "buffer"], result: "pointer" },
  } as const;
  for (const name of ["libc.so.6", "libdl.so.2", "libSystem.B.dylib"]) {
    try {
      return Deno.dlopen(name, fns);
    } catch {
      // try the next
    }
  }
  throw new MpiError("cannot find the system's dlopen/dlsym (libc or libdl) to load MPI");
}

/** An opened MPI library. */
export interface MpiLibrary {
  /** The file opened. */
  path: string;
  /** Its ABI. */
  abi: "mpich" | "openmpi";
  /** The functions. */
  fn: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
  /** Its handles. */
  handles: Handles;
}

/** Opens the first of `paths` that loads, finding the ABI from its symbols. Throws an {@linkcode MpiError}. */
export function openMpi(paths: string[]): MpiLibrary {
  const dl = openLibdl();
  const tried: string[] = [];
  for (const path of paths) {
    const h = dl.symbols.dlopen(cstr(path), 2 /* RTLD_NOW */ | 0x100 /* RTLD_GLOBAL */);
    if (h === null) {
      tried.push(path);
      continue;
    }
    const lib = Deno.dlopen(path, SYMBOLS);
    const addr = (name: string) => {
      const p = dl.symbols.dlsym(h, cstr(name));
      return p === null ? undefined : BigInt(Deno.UnsafePointer.value(p));
    };
    const comm = addr("ompi_mpi_comm_world");
    if (comm === undefined) return { path, abi: "mpich", fn: lib.symbols, handles: MPICH_HANDLES };
    const need = (name: string) => {
      const v = addr(name);
      if (v === undefined) throw new MpiError(`${path}: Open MPI symbol ${name} not found`);
      return v;
    };
    return {
      path,
      abi: "openmpi",
      fn: lib.symbols,
      handles: {
        comm,
        float: need("ompi_mpi_float"),
        double: need("ompi_mpi_double"),
        byte: need("ompi_mpi_byte"),
        sum: need("ompi_mpi_op_sum"),
        max: need("ompi_mpi_op_max"),
      },
    };
  }
  throw new MpiError(
    `this process was started by an MPI launcher, but no MPI library could be loaded (tried ${
      tried.join(", ")
    }). ` +
      `Install the MPI of the launcher (Debian/Ubuntu: apt-get install mpich, or openmpi-bin; clusters: module load ` +
      `mpi), or name the library with GINO_GW_MPI_LIB=/path/to/libmpi.so`,
  );
}
