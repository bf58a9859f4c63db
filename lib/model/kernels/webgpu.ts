/**
 * WGSL compute kernels of the `webgpu` backend, run through tfjs-backend-webgpu's program interface: GELU with its
 * derivative, the fused GNO edge reduction (gather - multiply - segment sum, one thread per edge element with an
 * atomic float add: no [E, B, C] temporaries, no transposes) and its gradient with respect to the kernel values,
 * the row gather and the row scatter-add that is its gradient (UnsortedSegmentSum along axis 0 without the stock
 * kernel's transposes). The spectral convolution's DFT contractions are batched matmuls, which the backend already
 * runs as WGSL. Data stay on the GPU: nothing here reads back.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { webgpu_util } from "@tensorflow/tfjs-backend-webgpu";
import { GELU_PAIR } from "../gpu/kernels.ts";
import type { TensorInfo } from "./kernel.ts";

/** The parts of tfjs-backend-webgpu's program interface these kernels use. */
interface Program {
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  variableNames: string[];
  uniforms?: string;
  workgroupSize: [number, number, number];
  atomic?: boolean;
  getUserCode(): string;
}

// deno-lint-ignore no-explicit-any
type WebGpuBackend = any;

const WORKGROUP: [number, number, number] = [64, 1, 1];

/** A program over `threads` invocations (flat index `index`), with `i32` uniforms named in `uniforms`. */
function program(
  key: string,
  outputShape: number[],
  variableNames: string[],
  threads: number,
  uniforms: string[],
  body: string,
  options: { atomic?: boolean; helpers?: string } = {},
): Program {
  const dispatchLayout = webgpu_util.flatDispatchLayout([threads]);
  return {
    outputShape,
    shaderKey: key,
    dispatchLayout,
    dispatch: webgpu_util.computeDispatch(dispatchLayout, [threads], WORKGROUP),
    variableNames,
    uniforms: uniforms.map((u) => `${u} : i32,`).join(" "),
    workgroupSize: WORKGROUP,
    atomic: options.atomic,
    getUserCode: () => `
      ${options.helpers ?? ""}
      fn main(index : i32) {
        if (index >= uniforms.threads) { return; }
        ${body}
      }`,
  };
}

/** Adds `v` to the float stored (as its bits) in the atomic output element `i`. */
const ATOMIC_ADD_F32 = `
  fn atomicAddF32(i : i32, v : f32) {
    var old = atomicLoad(&result[i]);
    loop {
      let r = atomicCompareExchangeWeak(&result[i], old, bitcast<i32>(bitcast<f32>(old) + v));
      if (r.exchanged) { break; }
      old = r.old_value;
    }
  }`;

/** A float32 tensor of zeros on the backend (the start of an atomic accumulation). */
function zeros(backend: WebGpuBackend, shape: number[]): TensorInfo {
  const fill = tf.getKernel("Fill", "webgpu")!.kernelFunc;
  return fill({ backend, inputs: {}, attrs: { shape, value: 0, dtype: "float32" } }) as TensorInfo;
}

function run(
  backend: WebGpuBackend,
  p: Program,
  inputs: TensorInfo[],
  uniforms: number[],
  output?: TensorInfo,
): TensorInfo {
  const data = uniforms.map((v) => ({ type: "int32", data: [v] }));
  return backend.runWebGPUProgram(p, inputs, "float32", data, output);
}

const sizeOf = (shape: readonly number[]) => shape.reduce((a, b) => a * b, 1);

/** GELU (`d` false) or its derivative (`d` true), with the erf approximation of `erf.ts` (as on wasm and cpu). */
function geluProgram(shape: number[], derivative: boolean): Program {
  return program(
    derivative ? "ginoGeluD" : "ginoGelu",
    shape,
    ["x"],
    sizeOf(shape),
    ["threads"],
    `setOutputAtIndex(index, gelu_pair(x[index]).${derivative ? "y" : "x"});`,
    { helpers: GELU_PAIR },
  );
}

/** GinoGelu on webgpu: [gelu(x), gelu'(x)]. */
export function geluWebGpu(x: TensorInfo, backend: WebGpuBackend): TensorInfo[] {
  const n = sizeOf(x.shape);
  return [
    run(backend, geluProgram(x.shape, false), [x], [n]),
    run(backend, geluProgram(x.shape, true), [x], [n]),
  ];
}

/** GinoGeluGrad on webgpu: dy * gelu'(x). */
export function geluGradWebGpu(dy: TensorInfo, x: TensorInfo, backend: WebGpuBackend): TensorInfo {
  const d = run(backend, geluProgram(x.shape, true), [x], [sizeOf(x.shape)]);
  const mul = tf.getKernel("Multiply", "webgpu")!.kernelFunc;
  const out = mul({ backend, inputs: { a: dy, b: d }, attrs: {} }) as TensorInfo;
  backend.disposeData(d.dataId);
  return out;
}

/** GinoEdgeReduce on webgpu: out[dst[e], b, c] += k[e, c] feats[src[e], b, c], one thread per (e, b, c). */
export function edgeReduceWebGpu(
  k: TensorInfo,
  feats: TensorInfo,
  src: TensorInfo,
  dst: TensorInfo,
  numSegments: number,
  backend: WebGpuBackend,
): TensorInfo {
  const [, B, C] = feats.shape;
  const E = src.shape[0], BC = B * C;
  const shape = [numSegments, B, C];
  const out = zeros(backend, shape);
  if (E === 0 || BC === 0) return out;
  const p = program(
    "ginoEdgeReduce",
    shape,
    ["kv", "fv", "si", "di"],
    E * BC,
    ["threads", "bc", "c"],
    `
      let e = index / uniforms.bc;
      let r = index - e * uniforms.bc;
      let v = kv[e * uniforms.c + r % uniforms.c] * fv[si[e] * uniforms.bc + r];
      atomicAddF32(di[e] * uniforms.bc + r, v);`,
    { atomic: true, helpers: ATOMIC_ADD_F32 },
  );
  return run(backend, p, [k, feats, src, dst], [E * BC, BC, C], out);
}

/** GinoEdgeReduceGradK on webgpu: dk[e, c] = sum over b of dy[dst[e], b, c] feats[src[e], b, c]. */
export function edgeReduceGradKWebGpu(
  dy: TensorInfo,
  feats: TensorInfo,
  src: TensorInfo,
  dst: TensorInfo,
  backend: WebGpuBackend,
): TensorInfo {
  const [, B, C] = feats.shape;
  const E = src.shape[0];
  const p = program(
    "ginoEdgeReduceGradK",
    [E, C],
    ["dy", "fv", "si", "di"],
    E * C,
    ["threads", "b", "c"],
    `
      let e = index / uniforms.c;
      let c = index - e * uniforms.c;
      let bc = uniforms.b * uniforms.c;
      let go = di[e] * bc + c;
      let fo = si[e] * bc + c;
      var s = 0.0;
      for (var b = 0; b < uniforms.b; b++) {
        s = s + dy[go + b * uniforms.c] * fv[fo + b * uniforms.c];
      }
      setOutputAtIndex(index, s);`,
  );
  return run(backend, p, [dy, feats, src, dst], [E * C, B, C]);
}

/** GinoGatherRows on webgpu: out[e, ...] = x[indices[e], ...]. */
export function gatherRowsWebGpu(x: TensorInfo, indices: TensorInfo, backend: WebGpuBackend): TensorInfo {
  const row = sizeOf(x.shape.slice(1)), n = indices.shape[0];
  const p = program(
    "ginoGatherRows",
    [n, ...x.shape.slice(1)],
    ["x", "idx"],
    n * row,
    ["threads", "row"],
    `
      let e = index / uniforms.row;
      setOutputAtIndex(index, x[idx[e] * uniforms.row + index - e * uniforms.row]);`,
  );
  return run(backend, p, [x, indices], [n * row, row]);
}

/**
 * UnsortedSegmentSum along axis 0 on webgpu (float32): out[ids[i], ...] += x[i, ...], ids outside
 * [0, numSegments) dropped; undefined for other cases (the stock kernel then runs).
 */
export function segmentSumWebGpu(
  x: TensorInfo,
  ids: TensorInfo,
  numSegments: number,
  backend: WebGpuBackend,
): TensorInfo | undefined {
  if (x.dtype !== "float32" || ids.shape.length !== 1 || ids.shape[0] !== x.shape[0]) return undefined;
  const row = sizeOf(x.shape.slice(1)), n = x.shape[0];
  const shape = [numSegments, ...x.shape.slice(1)];
  const out = zeros(backend, shape);
  if (n * row === 0) return out;
  const p = program(
    "ginoSegmentSum",
    shape,
    ["x", "ids"],
    n * row,
    ["threads", "row", "segments"],
    `
      let i = index / uniforms.row;
      let s = ids[i];
      if (s >= 0 && s < uniforms.segments) {
        atomicAddF32(s * uniforms.row + index - i * uniforms.row, x[index]);
      }`,
    { atomic: true, helpers: ATOMIC_ADD_F32 },
  );
  return run(backend, p, [x, ids], [n * row, row, numSegments], out);
}
