/**
 * BLAS threads per rank: the cores of a node shared out over its ranks (one process keeps the library's default).
 *
 * @module
 */

import type { World } from "./world.ts";

/**
 * Products below this many multiply-adds gain nothing from more BLAS threads, and the threads' spinning between
 * calls takes CPU from the single-threaded kernels around them (measured: a demo-sized step 14% slower with two
 * threads than with one on a 2-core machine).
 */
export const SMALL_PRODUCT = 16e6;

/**
 * Sets `OPENBLAS_NUM_THREADS` (and `OMP_NUM_THREADS`, `MKL_NUM_THREADS`) to the node's cores (`NCPUS` of a PBS job,
 * else the machine's) divided by the ranks on the node, before the BLAS is loaded; a value the user or the job set
 * wins. One process keeps the library's default (all cores), unless `largestProduct` (the multiply-adds of the
 * step's largest matrix product) is below {@linkcode SMALL_PRODUCT}: then one thread. Returns the threads per rank
 * (undefined: the library's default).
 */
export function configureThreads(world: World, largestProduct = Infinity): number | undefined {
  const given = Deno.env.get("OPENBLAS_NUM_THREADS");
  if (given) return Number(given) || undefined;
  const cores = Number(Deno.env.get("NCPUS")) || navigator.hardwareConcurrency || 1;
  const threads = largestProduct < SMALL_PRODUCT ? 1 : Math.max(1, Math.floor(cores / world.localSize));
  if (world.size === 1 && threads > 1) return undefined;
  for (const v of ["OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"]) {
    Deno.env.set(v, String(threads));
  }
  return threads;
}
