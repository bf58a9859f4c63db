/**
 * BLAS threads per rank: the cores of a node shared out over its ranks (one process keeps the library's default).
 *
 * @module
 */

import type { World } from "./world.ts";

/**
 * Sets `OPENBLAS_NUM_THREADS` (and `OMP_NUM_THREADS`, `MKL_NUM_THREADS`) to the node's cores (`NCPUS` of a PBS job,
 * else the machine's) divided by the ranks on the node, before the BLAS is loaded; a value the user or the job set
 * wins. Returns the threads per rank (undefined for one process: the library's default, all cores).
 */
export function configureThreads(world: World): number | undefined {
  if (world.size === 1) return undefined;
  const given = Deno.env.get("OPENBLAS_NUM_THREADS");
  if (given) return Number(given) || undefined;
  const cores = Number(Deno.env.get("NCPUS")) || navigator.hardwareConcurrency || 1;
  const threads = Math.max(1, Math.floor(cores / world.localSize));
  for (const v of ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]) {
    Deno.env.set(v, String(threads));
  }
  return threads;
}
