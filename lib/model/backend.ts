/**
 * TensorFlow.js and compute backends: `tensorflow` (tfjs-node-gpu or tfjs-node, when installed; loaded
 * dynamically), `webgpu` (any GPU through Deno's WebGPU: Vulkan, Metal or Direct3D 12), `wasm` (the CPU default),
 * `cpu` (the slow reference). On wasm and cpu the kernels that matter are replaced by faster ones (see
 * `kernels/register.ts`); on webgpu, training, validation and prediction run on the GPU engine (`gpu/engine.ts`)
 * on a device of its own (opened here, on the same adapter), and tfjs's own webgpu kernels serve only the rest
 * (creating, restoring and reading variables; `model.forwardGeometry` for library callers).
 *
 * @module
 */

/** TensorFlow.js (the tensor library the model is built on). */
import { withoutNativeStderr } from "../io/quiet.ts";
import * as tf from "@tensorflow/tfjs";
import { setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import "@tensorflow/tfjs-backend-webgpu";
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
export type BackendName = "auto" | "tensorflow" | "webgpu" | "wasm" | "cpu";

/** The WebGPU adapter a `webgpu` backend runs on. */
export interface GpuAdapterInfo {
  /** Vendor (a name or a PCI vendor id). */
  vendor: string;
  /** Architecture, where the driver says. */
  architecture: string;
  /** Device description (e.g. the GPU's name, or `llvmpipe` for Mesa's software rasteriser). */
  description: string;
  /** A software (CPU) adapter: correct, but far slower than a GPU. */
  fallback: boolean;
  /** The largest storage buffer a kernel may bind, bytes. */
  maxBufferBytes: number;
}

/** What {@linkcode initBackend} set up. */
export interface BackendInfo {
  /** The tfjs backend in use (`tensorflow`, `wasm` or `cpu`). */
  backend: string;
  /** The npm package that provided the `tensorflow` backend, if any. */
  nativePackage?: string;
  /** Kernels replaced and the BLAS library found (wasm / cpu). */
  kernels?: KernelReport;
  /** The GPU adapter (webgpu). */
  adapter?: GpuAdapterInfo;
  /**
   * The GPU engine's own device (webgpu), on the same adapter as tfjs's webgpu backend, with the adapter's
   * largest buffer limits: the engine uses only the WebGPU API on it, nothing inside tfjs.
   */
  engineDevice?: GPUDevice;
}

/** The WebGPU adapter Deno offers, or undefined when there is none (no GPU driver, or no Vulkan/EGL loader). */
export async function gpuAdapter(): Promise<GpuAdapterInfo | undefined> {
  const gpu = (navigator as { gpu?: GPU }).gpu;
  if (!gpu) return undefined;
  let a: GPUAdapter | null;
  try {
    a = await gpu.requestAdapter({ powerPreference: "high-performance" });
  } catch {
    return undefined;
  }
  if (!a) return undefined;
  const i = a.info as unknown as Record<string, unknown>;
  return {
    vendor: String(i.vendor ?? ""),
    architecture: String(i.architecture ?? ""),
    description: String(i.description ?? i.device ?? ""),
    fallback: Boolean(i.isFallbackAdapter ?? (a as { isFallbackAdapter?: boolean }).isFallbackAdapter),
    maxBufferBytes: a.limits.maxStorageBufferBindingSize,
  };
}

/** One line naming the adapter. */
export function describeAdapter(a: GpuAdapterInfo): string {
  return `${a.description || "unnamed adapter"} (vendor ${a.vendor || "?"}${
    a.architecture ? `, ${a.architecture}` : ""
  }${a.fallback ? ", software fallback: correct but slow" : ""})`;
}

async function initWebGpu(adapter: GpuAdapterInfo, log: (msg: string) => void): Promise<BackendInfo> {
  if (!(await tf.setBackend("webgpu"))) {
    throw new BackendError(
      `could not initialise the webgpu backend on ${describeAdapter(adapter)}; use --backend wasm`,
    );
  }
  await tf.ready();
  const kernels = registerFastKernels("webgpu", log);
  const info: BackendInfo = {
    backend: "webgpu",
    kernels,
    adapter,
    engineDevice: await engineDevice(adapter),
  };
  current = info;
  log(`backend: webgpu on ${describeAdapter(adapter)}`);
  return info;
}

/**
 * A device for the GPU engine on the adapter tfjs's webgpu backend runs on (an adapter gives one device, so the
 * adapter is asked for again): the adapter's largest buffers, bindings, workgroup memory and dispatches, and GPU
 * timestamps where offered (the profile's).
 */
async function engineDevice(adapter: GpuAdapterInfo): Promise<GPUDevice> {
  const a = await (navigator as { gpu: GPU }).gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!a) {
    throw new BackendError(
      `could not open a second device on ${describeAdapter(adapter)}; use --backend wasm`,
    );
  }
  const l = a.limits;
  return await a.requestDevice({
    label: "gino-gw GPU engine",
    requiredFeatures: a.features.has("timestamp-query") ? ["timestamp-query"] : [],
    requiredLimits: {
      maxBufferSize: l.maxBufferSize,
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
}

let current: BackendInfo | undefined;

/** What {@linkcode initBackend} set up, if it ran. */
export function backendInfo(): BackendInfo | undefined {
  return current;
}

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
 * `webgpu` when a GPU adapter that is not a software fallback exists, else `wasm`. Idempotent for the same name.
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
  if (name === "webgpu" || name === "auto") {
    // auto only looks: what the driver stack says while it is asked stays unprinted unless the GPU is then used
    const adapter = name === "auto" ? await withoutNativeStderr(gpuAdapter) : await gpuAdapter();
    if (adapter && (name === "webgpu" || !adapter.fallback)) return await initWebGpu(adapter, log);
    if (name === "webgpu") {
      throw new BackendError(
        "--backend webgpu: no WebGPU adapter found. Deno reaches the GPU through Vulkan (Linux), Metal (macOS) or " +
          "Direct3D 12 (Windows): on Linux install the GPU driver and the Vulkan loader (libvulkan1; NVIDIA: " +
          "the driver's Vulkan ICD; Mesa: mesa-vulkan-drivers), or Mesa's EGL (libegl1 libegl-mesa0 " +
          "libgl1-mesa-dri) for its software adapter; or use --backend wasm",
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
