/**
 * The WGSL kernels of the GPU training engine, as {@linkcode KernelSpec}s (its matrix products are in `gemm.ts`): the
 * truncated DFT along one axis (complex or real in and out), the spectral mode mixing and its two adjoints, the
 * GNO edge reduction and its gradients (over CSR lists: no atomics, so every sum has a fixed order and a step is
 * bitwise repeatable), the kernel MLP's first layer (gather, add, bias, GELU), the residual base, the relative L2
 * loss with its gradient, deterministic sums, the gradient norm and Adam.
 *
 * Every kernel indexes flat arrays with offsets passed as uniforms, so one compiled pipeline serves every shape.
 *
 * @module
 */

import { ERF_A } from "../kernels/erf.ts";
import type { BindingSpec, KernelSpec } from "./runtime.ts";

const [A1, A2, A3, A4, A5, A6] = ERF_A.map((a) => a.toPrecision(10));

/** Where in the input buffer's scalars the slot of a step (or validation batch) in its log is (a u32). */
export const IN_SLOT = 9;
/** Floats at the start of the training log before the steps' slots ([0]: updates stopped by a non-finite loss). */
export const LOG_HEADER = 4;

/**
 * WGSL `gelu_pair(v)`: GELU and its derivative (the erf approximation of `kernels/erf.ts`, as on the CPU
 * backends); the tfjs-op path's GELU kernel uses it too.
 */
export const GELU_PAIR = `
fn gelu_pair(v : f32) -> vec2<f32> {
  let z = abs(v) * 0.70710678118654752;
  let p = 1.0 + z * (${A1} + z * (${A2} + z * (${A3} + z * (${A4} + z * (${A5} + z * ${A6})))));
  var p16 = p * p;
  p16 = p16 * p16;
  p16 = p16 * p16;
  p16 = p16 * p16;
  let inv = 1.0 / p16;
  let h = 0.5 * (1.0 + select(1.0 - inv, inv - 1.0, v < 0.0));
  let dp = ${A1} + z * (2.0 * ${A2} + z * (3.0 * ${A3} + z * (4.0 * ${A4} + z * (5.0 * ${A5} + z * 6.0 * ${A6}))));
  return vec2<f32>(v * h, h + v * ((dp * inv) / p) * 8.0 * 0.70710678118654752);
}`;

/**
 * WGSL `tree_sum(li, v)`: the sum of `v` over the 256 invocations of a workgroup, in a fixed order (call it in
 * uniform control flow; every invocation gets the total).
 */
const TREE_SUM = `
var<workgroup> sh : array<f32, 256>;
fn tree_sum(li : u32, v : f32) -> f32 {
  sh[li] = v;
  workgroupBarrier();
  for (var k = 128u; k > 0u; k = k >> 1u) {
    if (li < k) { sh[li] = sh[li] + sh[li + k]; }
    workgroupBarrier();
  }
  let total = sh[0];
  workgroupBarrier();
  return total;
}`;

const r = (name: string, type: BindingSpec["type"] = "f32"): BindingSpec => ({ name, access: "read", type });
const w = (name: string, type: BindingSpec["type"] = "f32"): BindingSpec => ({
  name,
  access: "read_write",
  type,
});

/**
 * Truncated DFT along one axis: `Y[o, p, i] = sum_q T[p, q] X[o, q, i]` with a complex table T (cos part at
 * `tOff`, sin part `P * Q` after it): complex or real input (`XI` absent), complex output or its real part. One
 * invocation per column (o, i) computes all P outputs of it, so each input value is read once; P is part of the
 * kernel (at most 64), Q a uniform.
 */
export function dftKernel(complexIn: boolean, complexOut: boolean, P: number): KernelSpec {
  const bindings = [r("TAB"), r("XR")];
  if (complexIn) bindings.push(r("XI"));
  bindings.push(w("YR"));
  if (complexOut) bindings.push(w("YI"));
  const step = complexIn
    ? "sr[p] = sr[p] + c * xr - s * xi;\n      si[p] = si[p] + s * xr + c * xi;"
    : "sr[p] = sr[p] + c * xr;\n      si[p] = si[p] + s * xr;";
  return {
    key: `dft_${complexIn ? "c" : "r"}${complexOut ? "c" : "r"}_${P}`,
    bindings,
    uniforms: ["outer", "Q", "inner", "tOff", "xOff"],
    workgroup: 256,
    body: `
  if (t >= u.outer * u.inner) { return; }
  let i = t % u.inner;
  let o = t / u.inner;
  let xb = u.xOff + o * u.Q * u.inner + i;
  var sr : array<f32, ${P}>;
  var si : array<f32, ${P}>;
  for (var q = 0u; q < u.Q; q++) {
    let xr = XR[xb + q * u.inner];
    ${complexIn ? "let xi = XI[xb + q * u.inner];" : ""}
    for (var p = 0u; p < ${P}u; p++) {
      let c = TAB[u.tOff + p * u.Q + q];
      let s = TAB[u.tOff + (${P}u + p) * u.Q + q];
      ${step}
    }
  }
  let yb = o * ${P}u * u.inner + i;
  for (var p = 0u; p < ${P}u; p++) {
    YR[yb + p * u.inner] = sr[p];
    ${complexOut ? "YI[yb + p * u.inner] = si[p];" : ""}
  }`,
  };
}

/** Spectral mode mixing: `Y[b, md, o] = sum_i X[b, md, i] W[md, i, o]` (complex; W's parts at wr, wi in `W`). */
export const MIX_FORWARD: KernelSpec = {
  key: "mix_fwd",
  bindings: [r("XR"), r("XI"), r("W"), w("YR"), w("YI")],
  uniforms: ["n", "M", "C", "O", "wr", "wi"],
  workgroup: 256,
  body: `
  if (t >= u.n) { return; }
  let o = t % u.O;
  let rest = t / u.O;
  let md = rest % u.M;
  let b = rest / u.M;
  let xb = (b * u.M + md) * u.C;
  let wb = md * u.C * u.O + o;
  var yr = 0.0;
  var yi = 0.0;
  for (var i = 0u; i < u.C; i++) {
    let xr = XR[xb + i];
    let xi = XI[xb + i];
    let a = W[u.wr + wb + i * u.O];
    let c = W[u.wi + wb + i * u.O];
    yr = yr + xr * a - xi * c;
    yi = yi + xr * c + xi * a;
  }
  YR[t] = yr;
  YI[t] = yi;`,
};

/** Adjoint of the mixing for its input: `dX[b, md, i] = sum_o dY[b, md, o] conj(W[md, i, o])`. */
export const MIX_GRAD_X: KernelSpec = {
  key: "mix_dx",
  bindings: [r("DR"), r("DI"), r("W"), w("XR"), w("XI")],
  uniforms: ["n", "M", "C", "O", "wr", "wi"],
  workgroup: 256,
  body: `
  if (t >= u.n) { return; }
  let i = t % u.C;
  let rest = t / u.C;
  let md = rest % u.M;
  let b = rest / u.M;
  let db = (b * u.M + md) * u.O;
  let wb = md * u.C * u.O + i * u.O;
  var xr = 0.0;
  var xi = 0.0;
  for (var o = 0u; o < u.O; o++) {
    let dr = DR[db + o];
    let di = DI[db + o];
    let a = W[u.wr + wb + o];
    let c = W[u.wi + wb + o];
    xr = xr + dr * a + di * c;
    xi = xi + di * a - dr * c;
  }
  XR[t] = xr;
  XI[t] = xi;`,
};

/** Adjoint of the mixing for its weights: `dW[md, i, o] += sum_b conj(X[b, md, i]) dY[b, md, o]`. */
export const MIX_GRAD_W: KernelSpec = {
  key: "mix_dw",
  bindings: [r("XR"), r("XI"), r("DR"), r("DI"), w("G")],
  uniforms: ["n", "M", "C", "O", "wr", "wi", "batch"],
  workgroup: 256,
  body: `
  if (t >= u.n) { return; }
  let o = t % u.O;
  let rest = t / u.O;
  let i = rest % u.C;
  let md = rest / u.C;
  var gr = 0.0;
  var gi = 0.0;
  for (var b = 0u; b < u.batch; b++) {
    let xr = XR[(b * u.M + md) * u.C + i];
    let xi = XI[(b * u.M + md) * u.C + i];
    let dr = DR[(b * u.M + md) * u.O + o];
    let di = DI[(b * u.M + md) * u.O + o];
    gr = gr + xr * dr + xi * di;
    gi = gi + xr * di - xi * dr;
  }
  G[u.wr + t] = G[u.wr + t] + gr;
  G[u.wi + t] = G[u.wi + t] + gi;`,
};

/**
 * The kernel MLP's first layer on edges: `h[e, c] = AN[nb[e], c] + AQ[q[e], c] + bias[c]`, optionally through
 * GELU (writing the derivative to `D`).
 */
export function gatherAddKernel(gelu: boolean): KernelSpec {
  const bindings = [r("AN"), r("AQ"), r("IDX", "u32"), r("BIAS"), w("H")];
  if (gelu) bindings.push(w("D"));
  return {
    key: `gather_add${gelu ? "_gelu" : ""}`,
    bindings,
    uniforms: ["n", "C", "nbOff", "qOff", "biasOff"],
    workgroup: 256,
    helpers: gelu ? GELU_PAIR : "",
    body: `
  if (t >= u.n) { return; }
  let c = t % u.C;
  let e = t / u.C;
  let v = AN[IDX[u.nbOff + e] * u.C + c] + AQ[IDX[u.qOff + e] * u.C + c] + BIAS[u.biasOff + c];
  ${gelu ? "let gp = gelu_pair(v);\n  H[t] = gp.x;\n  D[t] = gp.y;" : "H[t] = v;"}`,
  };
}

/** Row sums over CSR lists: `OUT[j, c] = sum over t in [rs[j], rs[j+1]) of SRC[perm[t], c]`. */
export const SEGMENT_ROWS: KernelSpec = {
  key: "segment_rows",
  bindings: [r("SRC"), r("IDX", "u32"), w("OUT")],
  uniforms: ["n", "C", "rsOff", "permOff"],
  workgroup: 256,
  body: `
  if (t >= u.n) { return; }
  let c = t % u.C;
  let j = t / u.C;
  var s = 0.0;
  for (var q = IDX[u.rsOff + j]; q < IDX[u.rsOff + j + 1u]; q++) {
    s = s + SRC[IDX[u.permOff + q] * u.C + c];
  }
  OUT[t] = s;`,
};

/**
 * GNO edge reduction over edges sorted by segment: `OUT[b, s, c] = w_s sum_{e in rs[s]..rs[s+1]} K[e, c]
 * F[fOff + (b nb + src[e]) C + c]`, w_s = `INV[invOff + s]` for a mean (else 1).
 */
export function edgeReduceKernel(mean: boolean): KernelSpec {
  const bindings = [r("K"), r("F"), r("IDX", "u32"), w("OUT")];
  if (mean) bindings.push(r("INV"));
  return {
    key: `edge_fwd${mean ? "_mean" : ""}`,
    bindings,
    uniforms: ["n", "S", "C", "nb", "fOff", "rsOff", "srcOff", "invOff"],
    workgroup: 256,
    body: `
  if (t >= u.n) { return; }
  let c = t % u.C;
  let rest = t / u.C;
  let s = rest % u.S;
  let b = rest / u.S;
  var acc = 0.0;
  for (var e = IDX[u.rsOff + s]; e < IDX[u.rsOff + s + 1u]; e++) {
    acc = acc + K[e * u.C + c] * F[u.fOff + (b * u.nb + IDX[u.srcOff + e]) * u.C + c];
  }
  ${mean ? "acc = acc * INV[u.invOff + s];" : ""}
  OUT[t] = acc;`,
  };
}

/**
 * Gradient of the edge reduction for the kernel values: `DK[e, c] += sum_b w dY[b, dst[e], c] F[b, src[e], c]`
 * (`first`: `=`, the first micro-batch of a step, so nothing has to clear DK before it).
 */
export function edgeGradKKernel(mean: boolean, first = false): KernelSpec {
  const bindings = [r("DY"), r("F"), r("IDX", "u32"), w("DK")];
  if (mean) bindings.push(r("INV"));
  return {
    key: `edge_dk${mean ? "_mean" : ""}${first ? "_first" : ""}`,
    bindings,
    uniforms: ["n", "S", "C", "nb", "batch", "fOff", "srcOff", "dstOff", "invOff"],
    workgroup: 256,
    body: `
  if (t >= u.n) { return; }
  let c = t % u.C;
  let e = t / u.C;
  let d = IDX[u.dstOff + e];
  let s = IDX[u.srcOff + e];
  var acc = 0.0;
  for (var b = 0u; b < u.batch; b++) {
    acc = acc + DY[(b * u.S + d) * u.C + c] * F[u.fOff + (b * u.nb + s) * u.C + c];
  }
  ${mean ? "acc = acc * INV[u.invOff + d];" : ""}
  DK[t] = ${first ? "acc" : "DK[t] + acc"};`,
  };
}

/**
 * Gradient of the edge reduction for the features, over the edges grouped by source (CSR `rs`, `perm`):
 * `DF[b, j, c] = sum_{e with src[e] = j} w K[e, c] dY[b, dst[e], c]`.
 */
export function edgeGradFKernel(mean: boolean): KernelSpec {
  const bindings = [r("K"), r("DY"), r("IDX", "u32"), w("DF")];
  if (mean) bindings.push(r("INV"));
  return {
    key: `edge_df${mean ? "_mean" : ""}`,
    bindings,
    uniforms: ["n", "S", "C", "nb", "rsOff", "permOff", "dstOff", "invOff"],
    workgroup: 256,
    body: `
  if (t >= u.n) { return; }
  let c = t % u.C;
  let rest = t / u.C;
  let j = rest % u.nb;
  let b = rest / u.nb;
  var acc = 0.0;
  for (var q = IDX[u.rsOff + j]; q < IDX[u.rsOff + j + 1u]; q++) {
    let e = IDX[u.permOff + q];
    let d = IDX[u.dstOff + e];
    ${
      mean
        ? "acc = acc + K[e * u.C + c] * DY[(b * u.S + d) * u.C + c] * INV[u.invOff + d];"
        : "acc = acc + K[e * u.C + c] * DY[(b * u.S + d) * u.C + c];"
    }
  }
  DF[t] = acc;`,
  };
}

/**
 * The base forecast of a residual model (`mode` 0 last, 1 linear, 2 fitted) for x [rows, cols * tin] at `xOff`
 * in `X`: `BASE[row, col * tout + h]`.
 */
export const RESIDUAL_BASE: KernelSpec = {
  key: "residual_base",
  bindings: [r("X"), r("FIT"), w("BASE")],
  uniforms: ["n", "cols", "tin", "tout", "xOff", "mode"],
  workgroup: 256,
  body: `
  if (t >= u.n) { return; }
  let h = t % u.tout;
  let rest = t / u.tout;
  let col = rest % u.cols;
  let row = rest / u.cols;
  let xb = u.xOff + row * u.cols * u.tin + col * u.tin;
  let last = X[xb + u.tin - 1u];
  var v = last;
  if (u.mode == 1u && u.tin >= 2u) {
    v = last + f32(h + 1u) * (last - X[xb + u.tin - 2u]);
  } else if (u.mode == 2u) {
    let fb = col * (u.tin + 1u) * u.tout + h;
    v = 0.0;
    for (var i = 0u; i < u.tin; i++) { v = v + X[xb + i] * FIT[fb + i * u.tout]; }
    v = v + FIT[fb + u.tin * u.tout];
  }
  BASE[t] = v;`,
};

/**
 * Relative L2 loss per (window, core point): `r = sqrt(sum (p - y)^2 + 1e-30) / (sqrt(sum y^2) + eps)` over the
 * whole output row and, for `groups` > 1, over each column's `tout` steps too; `PART[g][b core + n]`. Training
 * (`grad`): `DP = scale (p - y) / (num den)` (0 on ghost points), scale = `IN[0]` (1 / (batch x core)).
 */
export function lossKernel(grad: boolean): KernelSpec {
  const bindings = [r("P"), r("IN"), w("PART")];
  if (grad) bindings.push(w("DP"));
  return {
    key: `loss${grad ? "_grad" : ""}`,
    bindings,
    uniforms: ["batch", "N", "core", "Co", "yOff", "groups", "tout", "eps_f"],
    workgroup: 256,
    body: `
  if (t >= u.batch * u.N) { return; }
  let n = t % u.N;
  let b = t / u.N;
  let row = t * u.Co;
  let yb = u.yOff + row;
  if (n >= u.core) {
    ${grad ? "for (var k = 0u; k < u.Co; k++) { DP[row + k] = 0.0; }" : ""}
    return;
  }
  let pi = b * u.core + n;
  let np = u.batch * u.core;
  var num = 0.0;
  var den = 0.0;
  for (var k = 0u; k < u.Co; k++) {
    let y = IN[yb + k];
    let d = P[row + k] - y;
    num = num + d * d;
    den = den + y * y;
  }
  let nn = sqrt(num + 1e-30);
  let dd = sqrt(den) + u.eps_f;
  PART[pi] = nn / dd;
  ${
      grad
        ? "let sc = IN[0] / (nn * dd);\n  for (var k = 0u; k < u.Co; k++) { DP[row + k] = sc * (P[row + k] - IN[yb + k]); }"
        : ""
    }
  if (u.groups > 1u) {
    for (var g = 0u; g < u.groups; g++) {
      var gn = 0.0;
      var gd = 0.0;
      for (var k = g * u.tout; k < (g + 1u) * u.tout; k++) {
        let y = IN[yb + k];
        let d = P[row + k] - y;
        gn = gn + d * d;
        gd = gd + y * y;
      }
      PART[(g + 1u) * np + pi] = sqrt(gn + 1e-30) / (sqrt(gd) + u.eps_f);
    }
  }`,
  };
}

/**
 * One workgroup sums `groups` runs of n partials in a fixed order into the step's (or validation batch's) slot of a
 * log: `ACC[accOff + slot * stride + g] (+)= scale * sum` (times `IN[0]` when `byParam`; `first`: overwrite, the
 * first micro-batch of a step), slot = the u32 at `IN[IN_SLOT]`. The log stays on the GPU until it is read
 * back, once for many steps.
 */
export function sumKernel(byParam: boolean, first: boolean): KernelSpec {
  return {
    key: `sum${byParam ? "_param" : ""}${first ? "_first" : ""}`,
    bindings: [r("PART"), w("ACC"), r("IN")],
    uniforms: ["n", "groups", "accOff", "stride", "scale_f"],
    workgroup: 256,
    helpers: TREE_SUM,
    body: `
  let at = u.accOff + bitcast<u32>(IN[${IN_SLOT}]) * u.stride;
  for (var g = 0u; g < u.groups; g++) {
    var s = 0.0;
    for (var i = li; i < u.n; i += 256u) { s = s + PART[g * u.n + i]; }
    let total = tree_sum(li, s);
    let v = total * u.scale_f${byParam ? " * IN[0]" : ""};
    if (li == 0u) { ACC[at + g] = ${first ? "v" : "ACC[at + g] + v"}; }
  }`,
  };
}

/** Sum of squares of `X[0..n)` in chunks of `chunk`, one partial per workgroup (fixed order). */
export const SQUARES: KernelSpec = {
  key: "squares",
  bindings: [r("X"), w("PART")],
  uniforms: ["n", "chunk", "parts"],
  workgroup: 256,
  helpers: TREE_SUM,
  body: `
  if (wid >= u.parts) { return; }
  let start = wid * u.chunk;
  let end = min(u.n, start + u.chunk);
  var s = 0.0;
  for (var i = start + li; i < end; i += 256u) { let v = X[i]; s = s + v * v; }
  let total = tree_sum(li, s);
  if (li == 0u) { PART[wid] = total; }`,
};

/** The global norm from the partial sums of squares, into the step's slot: `LOG[LOG_HEADER + 2 slot + 1]`. */
export const NORM: KernelSpec = {
  key: "norm",
  bindings: [r("PART"), w("LOG"), r("IN")],
  uniforms: ["parts"],
  workgroup: 256,
  helpers: TREE_SUM,
  body: `
  var s = 0.0;
  for (var i = li; i < u.parts; i += 256u) { s = s + PART[i]; }
  let total = tree_sum(li, s);
  if (li == 0u) { LOG[${LOG_HEADER}u + 2u * bitcast<u32>(IN[${IN_SLOT}]) + 1u] = sqrt(total); }`,
};

/**
 * Adam (PyTorch's rule, the arithmetic of `train/adam.ts`) over the flat parameters. The step's loss and gradient
 * norm are in its slot of the training log (`LOG[LOG_HEADER + 2 slot]`, `+ 1`); the update is skipped when the
 * loss is not finite, and then every later update too until the host has read the log (`LOG[0]` set: the host
 * learns of the loss only then, and a step after a skipped one must not run with the step count it assumed).
 * With `clip`, the gradient is first scaled by maxNorm / (norm + 1e-6) when the norm exceeds maxNorm. The
 * gradient is zeroed as it is read, so the next step accumulates into zeros without a clear. Hyper-parameters
 * from `IN`: [1] beta1, [2] 1 - beta1, [3] beta2, [4] 1 - beta2, [5] eps, [6] step size lr / (1 - beta1^t),
 * [7] sqrt(1 - beta2^t), [8] maxNorm, [IN_SLOT] the slot (u32).
 */
export function adamKernel(clip: boolean): KernelSpec {
  return {
    key: `adam${clip ? "_clip" : ""}`,
    bindings: [w("W"), w("G"), w("MM"), w("VV"), w("LOG"), r("IN")],
    uniforms: ["n"],
    workgroup: 256,
    body: `
  let at = ${LOG_HEADER}u + 2u * bitcast<u32>(IN[${IN_SLOT}]);
  let loss = LOG[at];
  let finite = abs(loss) <= 3.4028234e38;
  if (t == 0u && !finite) { LOG[0] = 1.0; }
  if (t >= u.n) { return; }
  var g = G[t];
  G[t] = 0.0;
  if (!finite || LOG[0] != 0.0) { return; }
  ${clip ? "let nrm = LOG[at + 1u];\n  if (nrm > IN[8]) { g = g * (IN[8] / (nrm + 1e-6)); }" : ""}
  let m = MM[t] * IN[1] + g * IN[2];
  let v = VV[t] * IN[3] + (g * g) * IN[4];
  MM[t] = m;
  VV[t] = v;
  let denom = sqrt(v) / IN[7] + IN[5];
  W[t] = W[t] - (m / denom) * IN[6];`,
  };
}
