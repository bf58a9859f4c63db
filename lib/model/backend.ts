/**
 * TensorFlow.js and compute backends: `tensorflow` (tfjs-node-gpu or tfjs-node, when installed; loaded
 * dynamically), `wasm` (the default here), `cpu` (the slow reference). On wasm and cpu the kernels that matter are
 * replaced by faster ones (see `kernels/register.ts`).
 *
 * @module
 */

/** TensorFlow.js (the tensor library the model is built on). */
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { ToolError } from "../errors.ts";
import { registerFastKernels } from "./kernels/register.ts";
import type { KernelReport } from "./kernels/register.ts";

/** TensorFlow.js, the tensor library of the model (the same instance the toolkit uses). */
export { tf };

// Production mode: no debug-time checks and no advice to install the Node.js backend on every run.
tf.env().set("PROD", true);

/** A backend that cannot be used here; the message says what to install or choose instead. */
export class BackendError extends ToolError {
  /** An error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "BackendError";
  }
}

/** Backend names accepted by `--backend`. */
export type BackendName = "auto" | "tensorflow" | "wasm" | "cpu";

/** What {@linkcode initBackend} set up. */
export interface BackendInfo {
  /** The tfjs backend in use (`tensorflow`, `wasm` or `cpu`). */
  backend: string;
  /** The npm package that provided the `tensorflow` backend, if any. */
  nativePackage?: string;
  /** Kernels replaced and the BLAS library found (wasm / cpu). */
  kernels?: KernelReport;
}

let current: BackendInfo | undefined;

/**
 * The native backend packages, by bare name: they load only when the user added them to the import map
 * (`deno add npm:@tensorflow/tfjs-node-gpu@4.22.0`); otherwise the import fails at once, with nothing downloaded.
 */
const NATIVE_PACKAGES = ["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node"];

async function tryNative(): Promise<string | undefined> {
  for (const pkg of NATIVE_PACKAGES) {
    try {
      await import(pkg);
      return pkg;
    } catch {
      // not installed
    }
  }
  return undefined;
}

/**
 * Where the wasm backend's `.wasm` files are, when they are not in node_modules (a bundle or a compiled binary):
 * `GINO_GW_WASM_DIR`, else the folder of the main module or of the executable if it holds them. A file URL.
 */
function wasmDir(): string | undefined {
  const file = "tfjs-backend-wasm-simd.wasm";
  const env = (() => {
    try {
      return Deno.env.get("GINO_GW_WASM_DIR");
    } catch {
      return undefined;
    }
  })();
  if (env) return new URL(env.endsWith("/") ? env : `${env}/`, `file://${Deno.cwd()}/`).href;
  for (const base of [Deno.mainModule, `file://${Deno.execPath()}`]) {
    try {
      const url = new URL(`./${file}`, base);
      if (url.protocol === "file:" && Deno.statSync(url).isFile) return new URL("./", url).href;
    } catch {
      // not there
    }
  }
  return undefined;
}

/**
 * Selects and initialises a backend. `auto` takes `tensorflow` when a native tfjs package is installed, else
 * `wasm`. Idempotent for the same name.
 */
export async function initBackend(
  name: BackendName = "auto",
  log: (msg: string) => void = () => {},
): Promise<BackendInfo> {
  if (current && (name === "auto" || current.backend === name)) return current;
  let info: BackendInfo;
  if (name === "tensorflow" || name === "auto") {
    const pkg = await tryNative();
    if (pkg && (await tf.setBackend("tensorflow"))) {
      await tf.ready();
      info = { backend: "tensorflow", nativePackage: pkg };
      current = info;
      log(`backend: tensorflow (${pkg})`);
      return info;
    }
    if (name === "tensorflow") {
      throw new BackendError(
        "--backend tensorflow needs @tensorflow/tfjs-node-gpu (CUDA) or @tensorflow/tfjs-node installed: " +
          "`deno add npm:@tensorflow/tfjs-node-gpu@4.22.0` (its install script downloads libtensorflow; see hpc/README.md), " +
          "or use --backend wasm",
      );
    }
  }
  const target = name === "cpu" ? "cpu" : "wasm";
  if (target === "wasm") {
    const dir = wasmDir();
    if (dir) {
      setWasmPaths(dir);
      // the backend's loader refers to __dirname, which a bundled (ES module) program does not define
      const g = globalThis as { __dirname?: string };
      g.__dirname ??= new URL(dir).pathname;
    }
  }
  if (!(await tf.setBackend(target))) {
    throw new BackendError(
      `could not initialise the ${target} backend (try --backend cpu, or set GINO_GW_WASM_DIR)`,
    );
  }
  await tf.ready();
  const kernels = registerFastKernels(target, log);
  info = { backend: target, kernels };
  current = info;
  log(
    `backend: ${target}${
      kernels.blas ? ` + BLAS (${kernels.blas})` : " (stock matmul, see the warning above)"
    }`,
  );
  return info;
}
