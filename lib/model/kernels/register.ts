/**
 * The fast kernels of the wasm and cpu backends, in one table ({@linkcode FAST_KERNELS}), and their registration:
 * each kernel a backend implements replaces the stock one of the same name (or is added under its own name); its
 * gradient is registered once. Where a kernel is missing (another backend, or no BLAS), the stock kernel stays and
 * the model composes stock ops (see `ops.ts`).
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { blasInstallHint, openBlas } from "./blas.ts";

/** How much slower a training step is without a system BLAS (the demo's epoch, measured; see the README). */
export const NO_BLAS_SLOWDOWN = "7x";
import type { Blas } from "./blas.ts";
import type { FastKernel } from "./kernel.ts";
import { segmentSumKernel } from "./segment_sum.ts";
import { geluGradKernel, geluKernel } from "./gelu.ts";
import { edgeReduceGradKKernel, edgeReduceKernel } from "./edge_reduce.ts";
import { gatherRowsKernel } from "./gather_rows.ts";
import { sumKernel } from "./sum.ts";
import { identityKernel } from "./identity.ts";
import { matmulKernel } from "./matmul.ts";
import { fnoLayerGradKernel, fnoLayerKernel } from "./fno_layer.ts";
import { adamKernel } from "./adam.ts";

export { EDGE_REDUCE_GRAD_K_KERNEL, EDGE_REDUCE_KERNEL } from "./edge_reduce.ts";
export { GATHER_ROWS_KERNEL } from "./gather_rows.ts";
export { GELU_GRAD_KERNEL, GELU_KERNEL } from "./gelu.ts";
export { FNO_LAYER_KERNEL } from "./fno_layer.ts";
export { ADAM_KERNEL } from "./adam.ts";
export { erf32 } from "./erf.ts";

/** Every fast kernel. */
export const FAST_KERNELS: readonly FastKernel[] = [
  segmentSumKernel,
  geluKernel,
  geluGradKernel,
  edgeReduceKernel,
  edgeReduceGradKKernel,
  gatherRowsKernel,
  sumKernel,
  identityKernel,
  matmulKernel,
  fnoLayerKernel,
  fnoLayerGradKernel,
  adamKernel,
];

/** What {@linkcode registerFastKernels} did. */
export interface KernelReport {
  /** Kernel names that were replaced or added. */
  registered: string[];
  /** The BLAS library in use for BatchMatMul, if any. */
  blas?: string;
}

interface Registered {
  report: KernelReport;
  /** The fast kernel functions, and the stock ones they replaced (undefined: a new kernel), by name. */
  kernels: Map<string, { fast: tf.KernelFunc; stock?: tf.KernelFunc }>;
}

const done = new Map<string, Registered>();
const gradients = new Set<string>();

function put(name: string, backendName: string, kernelFunc: tf.KernelFunc | undefined): void {
  if (tf.getKernel(name, backendName)) tf.unregisterKernel(name, backendName);
  if (kernelFunc) tf.registerKernel({ kernelName: name, backendName, kernelFunc });
}

/** Registers the fast kernels `backendName` has (see {@linkcode FAST_KERNELS}); idempotent. */
export function registerFastKernels(
  backendName: string,
  log: (msg: string) => void = () => {},
): KernelReport {
  const seen = done.get(backendName);
  if (seen) return seen.report;
  let blas: Blas | undefined;
  try {
    // only where a kernel of this backend would use it
    if (FAST_KERNELS.some((k) => k.usesBlas && k.backends.includes(backendName))) blas = openBlas();
  } catch (e) {
    log(
      `warning: no system BLAS (${(e as Error).message}): training runs about ${NO_BLAS_SLOWDOWN} slower ` +
        `(the demo's epoch, measured). To install one: ${blasInstallHint()}`,
    );
  }
  const r: Registered = { report: { registered: [], blas: blas?.library }, kernels: new Map() };
  for (const k of FAST_KERNELS) {
    if (!k.backends.includes(backendName)) continue;
    const stock = tf.getKernel(k.name, backendName)?.kernelFunc;
    const fast = k.forward(backendName, { stock, blas });
    if (!fast) continue;
    put(k.name, backendName, fast);
    r.kernels.set(k.name, { fast, stock });
    if (k.gradient && !gradients.has(k.name)) {
      tf.registerGradient(k.gradient);
      gradients.add(k.name);
    }
    r.report.registered.push(k.name);
  }
  if (!blas) delete r.report.blas;
  done.set(backendName, r);
  return r.report;
}

/**
 * Switches a backend between its fast kernels (`true`, as registered) and the stock ones (`false`: replaced
 * kernels restored, new ones removed, so the model composes stock ops): the reference path of the kernel tests and
 * benchmarks.
 */
export function useFastKernels(backendName: string, on: boolean): void {
  const r = done.get(backendName);
  if (!r) return;
  for (const [name, { fast, stock }] of r.kernels) put(name, backendName, on ? fast : stock);
}
