/**
 * One FNO layer before its activation, fused: `spectralConv(h) + bias + h @ skip` on channels-last h
 * [B, G1, G2, G3, C], as BLAS calls on reused buffers. The truncated DFTs are applied one axis at a time, x first
 * (so the first and largest contraction is B big GEMMs), complex values carried as (re, im) pairs next to the axis
 * being contracted so that every step is a plain real GEMM; the channel mixing is two GEMMs per mode; the bias is
 * added to the DC mode (the inverse transform spreads it over every voxel); the last inverse GEMM accumulates onto
 * the skip product. The backward pass is the adjoint of the same chain (kernel `GinoFnoLayerGrad`), and the only
 * tensor it keeps besides the inputs is the kept modes of h ([M, 2, B, C], small).
 *
 * Mode m = (a * my + b) * mz + c stands for frequencies (fx[a], fy[b], c), as in {@linkcode keptFrequencies};
 * weights wr, wi are [M, C, O]; skip is [C, O]; bias [O].
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";
import { Rng } from "../../data/rng.ts";
import { customOp, io } from "./kernel.ts";
import type { FastKernel, TensorInfo } from "./kernel.ts";
import type { Blas } from "./blas.ts";
import { dftMatrices, disposeDft, keptFrequencies, keptModeCounts, spectralConv } from "../spectral.ts";

/** Name of the fused forward kernel (outputs: the pre-activation and the kept modes of h). */
export const FNO_LAYER_KERNEL = "GinoFnoLayer";
/** Name of its gradient kernel. */
export const FNO_LAYER_GRAD_KERNEL = "GinoFnoLayerGrad";

/** The DFT matrices of one grid and mode set, in the layouts the GEMMs use. */
interface Plan {
  g: [number, number, number];
  m: [number, number, number];
  /** forward x: [2mx, G1], row (a, re/im) */
  a1: Float32Array;
  /** forward y: [2my, 2G2], row (b, re/im out), column (re/im in, y) */
  a2: Float32Array;
  /** forward z with 1/(G1 G2 G3): [2mz, 2G3] */
  a3: Float32Array;
  /** inverse z with the rfft weights: [2G3, 2mz], row (re/im out, z), column (c, re/im in) */
  b3: Float32Array;
  /** inverse y: [2G2, 2my] */
  b2: Float32Array;
  /** inverse x, real part: [G1, 2mx], column (a, re/im) */
  b1: Float32Array;
  /** the mode of frequency (0, 0, 0) */
  dc: number;
}

const plans = new Map<string, Plan>();

function planFor(g: [number, number, number], nModes: number[]): Plan {
  const key = `${g}|${nModes}`;
  const cached = plans.get(key);
  if (cached) return cached;
  const [g1, g2, g3] = g;
  const m = keptModeCounts(nModes);
  const [mx, my, mz] = m;
  const fx = keptFrequencies(g1, mx), fy = keptFrequencies(g2, my);
  const s = 1 / (g1 * g2 * g3);
  const ang = (f: number, x: number, n: number) => (2 * Math.PI * f * x) / n;
  const a1 = new Float32Array(2 * mx * g1), b1 = new Float32Array(g1 * 2 * mx);
  for (let a = 0; a < mx; a++) {
    for (let x = 0; x < g1; x++) {
      const t = ang(fx[a], x, g1);
      a1[(2 * a) * g1 + x] = Math.cos(t);
      a1[(2 * a + 1) * g1 + x] = -Math.sin(t);
      b1[x * 2 * mx + 2 * a] = Math.cos(t);
      b1[x * 2 * mx + 2 * a + 1] = -Math.sin(t);
    }
  }
  // complex multiplication by e^{-i t} (forward) or w e^{+i t} (inverse) as 2x2 real blocks
  const fwd = (n: number, f: (k: number) => number, mk: number, scale: number) => {
    const out = new Float32Array(2 * mk * 2 * n);
    for (let k = 0; k < mk; k++) {
      for (let y = 0; y < n; y++) {
        const t = ang(f(k), y, n), c = scale * Math.cos(t), sn = scale * Math.sin(t);
        const row = (ro: number) => (2 * k + ro) * 2 * n;
        out[row(0) + y] = c;
        out[row(0) + n + y] = sn;
        out[row(1) + y] = -sn;
        out[row(1) + n + y] = c;
      }
    }
    return out;
  };
  const inv = (n: number, f: (k: number) => number, mk: number, w: (k: number) => number) => {
    const out = new Float32Array(2 * n * 2 * mk);
    for (let y = 0; y < n; y++) {
      for (let k = 0; k < mk; k++) {
        const t = ang(f(k), y, n), c = w(k) * Math.cos(t), sn = w(k) * Math.sin(t);
        const col = 2 * k;
        out[y * 2 * mk + col] = c;
        out[y * 2 * mk + col + 1] = -sn;
        out[(n + y) * 2 * mk + col] = sn;
        out[(n + y) * 2 * mk + col + 1] = c;
      }
    }
    return out;
  };
  const wz = (c: number) => (c === 0 || 2 * c === g3 ? 1 : 2);
  const plan: Plan = {
    g,
    m,
    a1,
    a2: fwd(g2, (k) => fy[k], my, 1),
    a3: fwd(g3, (k) => k, mz, s),
    b3: inv(g3, (k) => k, mz, wz),
    b2: inv(g2, (k) => fy[k], my, () => 1),
    b1,
    dc: (fx.indexOf(0) * my + fy.indexOf(0)) * mz,
  };
  plans.set(key, plan);
  return plan;
}

const scratchBuffers: Float32Array[] = [];
/** A reused buffer of at least `size` floats (slot `i`); its contents are garbage. */
function scratch(i: number, size: number): Float32Array {
  if (!scratchBuffers[i] || scratchBuffers[i].length < size) {
    scratchBuffers[i] = new Float32Array(Math.ceil(size * 1.1));
  }
  return scratchBuffers[i].subarray(0, size);
}

/** Shapes of one call. */
interface Dims {
  b: number;
  g: [number, number, number];
  c: number;
  o: number;
}

function dimsOf(h: TensorInfo, wr: TensorInfo): Dims {
  const [b, g1, g2, g3, c] = h.shape as number[];
  return { b, g: [g1, g2, g3], c, o: wr.shape[2] };
}

/** Forward DFT of h over the kept modes: [B, M, 2, C] (re, im per mode). */
function forwardModes(blas: Blas, p: Plan, d: Dims, h: Float32Array, out: Float32Array): void {
  const [g1, g2, g3] = p.g, [mx, my, mz] = p.m, { b, c } = d;
  const r1 = g2 * g3 * c, r2 = g3 * c;
  const t1 = scratch(0, b * 2 * mx * r1), t2 = scratch(1, b * mx * 2 * my * r2);
  for (let i = 0; i < b; i++) {
    blas.sgemm(false, false, 2 * mx, r1, g1, p.a1, h.subarray(i * g1 * r1), t1.subarray(i * 2 * mx * r1));
  }
  for (let i = 0; i < b * mx; i++) {
    blas.sgemm(
      false,
      false,
      2 * my,
      r2,
      2 * g2,
      p.a2,
      t1.subarray(i * 2 * g2 * r2),
      t2.subarray(i * 2 * my * r2),
    );
  }
  for (let i = 0; i < b * mx * my; i++) {
    blas.sgemm(
      false,
      false,
      2 * mz,
      c,
      2 * g3,
      p.a3,
      t2.subarray(i * 2 * g3 * c),
      out.subarray(i * 2 * mz * c),
    );
  }
}

/** Inverse DFT of the modes y [B, M, 2, O] (real part), accumulated onto out [B, G1, G2, G3, O]. */
function inverseModes(blas: Blas, p: Plan, d: Dims, y: Float32Array, out: Float32Array): void {
  const [g1, g2, g3] = p.g, [mx, my, mz] = p.m, { b, o } = d;
  const r2 = g3 * o, r1 = g2 * g3 * o;
  const v = scratch(1, b * mx * my * 2 * g3 * o), w2 = scratch(0, b * mx * 2 * g2 * r2);
  for (let i = 0; i < b * mx * my; i++) {
    blas.sgemm(false, false, 2 * g3, o, 2 * mz, p.b3, y.subarray(i * 2 * mz * o), v.subarray(i * 2 * g3 * o));
  }
  for (let i = 0; i < b * mx; i++) {
    blas.sgemm(
      false,
      false,
      2 * g2,
      r2,
      2 * my,
      p.b2,
      v.subarray(i * 2 * my * r2),
      w2.subarray(i * 2 * g2 * r2),
    );
  }
  for (let i = 0; i < b; i++) {
    blas.sgemm(
      false,
      false,
      g1,
      r1,
      2 * mx,
      p.b1,
      w2.subarray(i * 2 * mx * r1),
      out.subarray(i * g1 * r1),
      1,
    );
  }
}

/** The adjoint of {@linkcode inverseModes}: dout [B, G1, G2, G3, O] -> dy [B, M, 2, O]. */
function inverseModesAdjoint(blas: Blas, p: Plan, d: Dims, dout: Float32Array, dy: Float32Array): void {
  const [g1, g2, g3] = p.g, [mx, my, mz] = p.m, { b, o } = d;
  const r2 = g3 * o, r1 = g2 * g3 * o;
  const w2 = scratch(0, b * mx * 2 * g2 * r2), v = scratch(1, b * mx * my * 2 * g3 * o);
  for (let i = 0; i < b; i++) {
    blas.sgemm(true, false, 2 * mx, r1, g1, p.b1, dout.subarray(i * g1 * r1), w2.subarray(i * 2 * mx * r1));
  }
  for (let i = 0; i < b * mx; i++) {
    blas.sgemm(
      true,
      false,
      2 * my,
      r2,
      2 * g2,
      p.b2,
      w2.subarray(i * 2 * g2 * r2),
      v.subarray(i * 2 * my * r2),
    );
  }
  for (let i = 0; i < b * mx * my; i++) {
    blas.sgemm(true, false, 2 * mz, o, 2 * g3, p.b3, v.subarray(i * 2 * g3 * o), dy.subarray(i * 2 * mz * o));
  }
}

/** The adjoint of {@linkcode forwardModes}: dx [B, M, 2, C] -> dh [B, G1, G2, G3, C], accumulated. */
function forwardModesAdjoint(blas: Blas, p: Plan, d: Dims, dx: Float32Array, dh: Float32Array): void {
  const [g1, g2, g3] = p.g, [mx, my, mz] = p.m, { b, c } = d;
  const r1 = g2 * g3 * c, r2 = g3 * c;
  const t2 = scratch(1, b * mx * 2 * my * r2), t1 = scratch(0, b * 2 * mx * r1);
  for (let i = 0; i < b * mx * my; i++) {
    blas.sgemm(
      true,
      false,
      2 * g3,
      c,
      2 * mz,
      p.a3,
      dx.subarray(i * 2 * mz * c),
      t2.subarray(i * 2 * g3 * c),
    );
  }
  for (let i = 0; i < b * mx; i++) {
    blas.sgemm(
      true,
      false,
      2 * g2,
      r2,
      2 * my,
      p.a2,
      t2.subarray(i * 2 * my * r2),
      t1.subarray(i * 2 * g2 * r2),
    );
  }
  for (let i = 0; i < b; i++) {
    blas.sgemm(true, false, g1, r1, 2 * mx, p.a1, t1.subarray(i * 2 * mx * r1), dh.subarray(i * g1 * r1), 1);
  }
}

/** [B, M, 2, K] <-> [M, 2, B, K] (`toModes` false goes back). */
function permute(
  src: Float32Array,
  dst: Float32Array,
  b: number,
  modes: number,
  k: number,
  toModes: boolean,
): void {
  for (let i = 0; i < b; i++) {
    for (let m = 0; m < modes; m++) {
      for (let r = 0; r < 2; r++) {
        const bm = ((i * modes + m) * 2 + r) * k, mb = ((m * 2 + r) * b + i) * k;
        if (toModes) dst.set(src.subarray(bm, bm + k), mb);
        else dst.set(src.subarray(mb, mb + k), bm);
      }
    }
  }
}

/** Channel mixing per mode: y[m] = x[m] (wr + i wi), x and y [M, 2, B, *] (re rows, then im rows). */
function mixModes(
  blas: Blas,
  d: Dims,
  modes: number,
  x: Float32Array,
  wr: Float32Array,
  wi: Float32Array,
  y: Float32Array,
): void {
  const { b, c, o } = d;
  const pr = scratch(2, 2 * b * o), pi = scratch(3, 2 * b * o);
  for (let m = 0; m < modes; m++) {
    const xm = x.subarray(m * 2 * b * c, (m + 1) * 2 * b * c);
    blas.sgemm(false, false, 2 * b, o, c, xm, wr.subarray(m * c * o), pr);
    blas.sgemm(false, false, 2 * b, o, c, xm, wi.subarray(m * c * o), pi);
    const base = m * 2 * b * o, half = b * o;
    for (let j = 0; j < half; j++) {
      y[base + j] = pr[j] - pi[half + j];
      y[base + half + j] = pi[j] + pr[half + j];
    }
  }
}

/** Gradients of the mixing: dx [M, 2, B, C] from dy [M, 2, B, O], and dwr, dwi [M, C, O]. */
function mixModesAdjoint(
  blas: Blas,
  d: Dims,
  modes: number,
  x: Float32Array,
  dy: Float32Array,
  wr: Float32Array,
  wi: Float32Array,
  grads: { dx: Float32Array; dwr: Float32Array; dwi: Float32Array },
): void {
  const { b, c, o } = d;
  const qr = scratch(2, 2 * b * c), qi = scratch(3, 2 * b * c), swapped = scratch(4, 2 * b * o);
  const half = b * o, halfC = b * c;
  for (let m = 0; m < modes; m++) {
    const xm = x.subarray(m * 2 * b * c, (m + 1) * 2 * b * c),
      dym = dy.subarray(m * 2 * b * o, (m + 1) * 2 * b * o);
    // dwr = [xr; xi]^T [dyr; dyi], dwi = [xr; xi]^T [dyi; -dyr]
    blas.sgemm(true, false, c, o, 2 * b, xm, dym, grads.dwr.subarray(m * c * o));
    for (let j = 0; j < half; j++) {
      swapped[j] = dym[half + j];
      swapped[half + j] = -dym[j];
    }
    blas.sgemm(true, false, c, o, 2 * b, xm, swapped, grads.dwi.subarray(m * c * o));
    // dxr = dyr wr^T + dyi wi^T, dxi = dyi wr^T - dyr wi^T
    blas.sgemm(false, true, 2 * b, c, o, dym, wr.subarray(m * c * o), qr);
    blas.sgemm(false, true, 2 * b, c, o, dym, wi.subarray(m * c * o), qi);
    const base = m * 2 * b * c;
    for (let j = 0; j < halfC; j++) {
      grads.dx[base + j] = qr[j] + qi[halfC + j];
      grads.dx[base + halfC + j] = qr[halfC + j] - qi[j];
    }
  }
}

const nModesOf = (attrs: unknown) => (attrs as { nModes: number[] }).nModes;

/** The fused layer, forward. */
export const fnoLayerKernel: FastKernel = {
  name: FNO_LAYER_KERNEL,
  backends: ["wasm", "cpu"],
  usesBlas: true,
  forward: (backendName, { blas }) => {
    if (!blas) return undefined;
    return ({ inputs, backend, attrs }) => {
      const { h, wr, wi, skip, bias } = inputs as Record<string, TensorInfo>;
      const d = dimsOf(h, wr);
      const p = planFor(d.g, nModesOf(attrs));
      const modes = p.m[0] * p.m[1] * p.m[2];
      if (wr.shape[0] !== modes || wr.shape[1] !== d.c) {
        throw new Error(
          `${FNO_LAYER_KERNEL}: weights [${wr.shape}] do not fit ${modes} modes and ${d.c} channels`,
        );
      }
      const rio = io(backendName, backend);
      const out = rio.out([...h.shape.slice(0, 4), d.o], "float32");
      const xmOut = rio.out([modes, 2, d.b, d.c], "float32");
      const hv = rio.read(h) as Float32Array,
        ov = out.values as Float32Array,
        xm = xmOut.values as Float32Array;
      const q = d.b * d.g[0] * d.g[1] * d.g[2];
      blas.sgemm(false, false, q, d.o, d.c, hv, rio.read(skip) as Float32Array, ov);
      const xb = scratch(5, d.b * modes * 2 * d.c);
      forwardModes(blas, p, d, hv, xb);
      permute(xb, xm, d.b, modes, d.c, true);
      const ym = scratch(6, modes * 2 * d.b * d.o);
      mixModes(blas, d, modes, xm, rio.read(wr) as Float32Array, rio.read(wi) as Float32Array, ym);
      const bv = rio.read(bias) as Float32Array;
      for (let i = 0; i < d.b; i++) {
        const at = (p.dc * 2 * d.b + i) * d.o; // real part of the DC mode
        for (let j = 0; j < d.o; j++) ym[at + j] += bv[j];
      }
      const yb = scratch(5, d.b * modes * 2 * d.o);
      permute(ym, yb, d.b, modes, d.o, false);
      inverseModes(blas, p, d, yb, ov);
      return [out.finish(), xmOut.finish()];
    };
  },
  example: () => fnoExample(),
};

/**
 * The fused layer as a differentiable op: `fnoLayerOp(nModes)(h, wr, wi, skip, bias)`. Keeps the inputs and the
 * kept modes of h for the backward pass (a custom gradient: tfjs would otherwise make zeros for the second
 * output's gradient).
 */
export function fnoLayerOp(nModes: number[]): (...inputs: tf.Tensor[]) => tf.Tensor {
  const key = nModes.join(",");
  let op = ops.get(key);
  if (!op) {
    op = customOp(([h, wr, wi, skip, bias], save) => {
      const [out, xm] = tf.engine().runKernel(
        FNO_LAYER_KERNEL,
        { h, wr, wi, skip, bias },
        { nModes } as unknown as tf.NamedAttrMap,
      ) as tf.Tensor[];
      save([h, wr, wi, skip, bias, xm]);
      return {
        value: out,
        gradFunc: (dy, [h, wr, wi, skip, bias, xm]) =>
          tf.engine().runKernel(
            FNO_LAYER_GRAD_KERNEL,
            { dy, h, xm, wr, wi, skip, bias },
            { nModes } as unknown as tf.NamedAttrMap,
          ) as tf.Tensor[],
      };
    });
    ops.set(key, op);
  }
  return op;
}
const ops = new Map<string, (...inputs: tf.Tensor[]) => tf.Tensor>();

/** The fused layer's gradients: dh, dwr, dwi, dskip, dbias. */
export const fnoLayerGradKernel: FastKernel = {
  name: FNO_LAYER_GRAD_KERNEL,
  backends: ["wasm", "cpu"],
  usesBlas: true,
  forward: (backendName, { blas }) => {
    if (!blas) return undefined;
    return ({ inputs, backend, attrs }) => {
      const { dy, h, xm, wr, wi, skip, bias } = inputs as Record<string, TensorInfo>;
      const d = dimsOf(h, wr);
      const p = planFor(d.g, nModesOf(attrs));
      const modes = p.m[0] * p.m[1] * p.m[2];
      const rio = io(backendName, backend);
      const outs = [
        rio.out(h.shape, "float32"),
        rio.out(wr.shape, "float32"),
        rio.out(wi.shape, "float32"),
        rio.out(skip.shape, "float32"),
        rio.out(bias.shape, "float32"),
      ];
      const [dh, dwr, dwi, dskip, dbias] = outs.map((o) => o.values as Float32Array);
      const dyv = rio.read(dy) as Float32Array, hv = rio.read(h) as Float32Array;
      const q = d.b * d.g[0] * d.g[1] * d.g[2];
      const skipV = rio.read(skip) as Float32Array;
      blas.sgemm(true, false, d.c, d.o, q, hv, dyv, dskip);
      blas.sgemm(false, true, q, d.c, d.o, dyv, skipV, dh);
      const dyb = scratch(5, d.b * modes * 2 * d.o);
      inverseModesAdjoint(blas, p, d, dyv, dyb);
      for (let j = 0; j < d.o; j++) {
        let s = 0;
        for (let i = 0; i < d.b; i++) s += dyb[((i * modes + p.dc) * 2) * d.o + j];
        dbias[j] = s;
      }
      const dym = scratch(6, modes * 2 * d.b * d.o);
      permute(dyb, dym, d.b, modes, d.o, true);
      const dxm = scratch(7, modes * 2 * d.b * d.c);
      mixModesAdjoint(
        blas,
        d,
        modes,
        rio.read(xm) as Float32Array,
        dym,
        rio.read(wr) as Float32Array,
        rio.read(wi) as Float32Array,
        { dx: dxm, dwr, dwi },
      );
      const dxb = scratch(5, d.b * modes * 2 * d.c);
      permute(dxm, dxb, d.b, modes, d.c, false);
      forwardModesAdjoint(blas, p, d, dxb, dh);
      return outs.map((o) => o.finish());
    };
  },
};

/** A small layer (B 2, grid 8x8x8, 3 -> 4 channels, 4x4x3 modes) against a direct float64 evaluation. */
function fnoExample() {
  const rng = new Rng(11);
  const b = 2, g = 8, c = 3, o = 4, nModes = [4, 4, 4];
  const [mx, my, mz] = keptModeCounts(nModes);
  const modes = mx * my * mz;
  const rand = (n: number, s = 1) => Float32Array.from({ length: n }, () => s * rng.normal());
  const h = rand(b * g * g * g * c), wr = rand(modes * c * o, 0.3), wi = rand(modes * c * o, 0.3);
  const skip = rand(c * o, 0.5), bias = rand(o, 0.5);
  const fx = keptFrequencies(g, mx), fy = keptFrequencies(g, my);
  const expect = new Float64Array(b * g * g * g * o);
  const vox = (x: number, y: number, z: number) => (x * g + y) * g + z;
  for (let i = 0; i < b; i++) {
    for (let v = 0; v < g ** 3; v++) {
      for (let k = 0; k < o; k++) {
        let s = bias[k];
        for (let j = 0; j < c; j++) s += h[(i * g ** 3 + v) * c + j] * skip[j * o + k];
        expect[(i * g ** 3 + v) * o + k] = s;
      }
    }
    for (let a = 0; a < mx; a++) {
      for (let bb = 0; bb < my; bb++) {
        for (let cz = 0; cz < mz; cz++) {
          const m = (a * my + bb) * mz + cz;
          // X = G^-3 sum h e^{-i theta}, then Y = X (wr + i wi), then out += w Re(Y e^{+i theta})
          const xr = new Float64Array(c), xi = new Float64Array(c);
          for (let x = 0; x < g; x++) {
            for (let y = 0; y < g; y++) {
              for (let z = 0; z < g; z++) {
                const t = (2 * Math.PI * (fx[a] * x + fy[bb] * y + cz * z)) / g;
                for (let j = 0; j < c; j++) {
                  const hv = h[(i * g ** 3 + vox(x, y, z)) * c + j] / g ** 3;
                  xr[j] += hv * Math.cos(t);
                  xi[j] -= hv * Math.sin(t);
                }
              }
            }
          }
          const w = cz === 0 ? 1 : 2;
          for (let k = 0; k < o; k++) {
            let yr = 0, yi = 0;
            for (let j = 0; j < c; j++) {
              yr += xr[j] * wr[(m * c + j) * o + k] - xi[j] * wi[(m * c + j) * o + k];
              yi += xr[j] * wi[(m * c + j) * o + k] + xi[j] * wr[(m * c + j) * o + k];
            }
            for (let x = 0; x < g; x++) {
              for (let y = 0; y < g; y++) {
                for (let z = 0; z < g; z++) {
                  const t = (2 * Math.PI * (fx[a] * x + fy[bb] * y + cz * z)) / g;
                  expect[(i * g ** 3 + vox(x, y, z)) * o + k] += w * (yr * Math.cos(t) - yi * Math.sin(t));
                }
              }
            }
          }
        }
      }
    }
  }
  return {
    inputs: {
      h: tf.tensor(h, [b, g, g, g, c]),
      wr: tf.tensor3d(wr, [modes, c, o]),
      wi: tf.tensor3d(wi, [modes, c, o]),
      skip: tf.tensor2d(skip, [c, o]),
      bias: tf.tensor1d(bias),
    },
    attrs: { nModes },
    expect,
    tol: 2e-6,
    op: (t: Record<string, tf.Tensor>) => fnoLayerOp(nModes)(t.h, t.wr, t.wi, t.skip, t.bias),
    composed: composedLayer(nModes),
    differentiate: ["h", "wr", "wi", "skip", "bias"],
  };
}

/** The same layer from the stock-op spectral convolution (for gradient checks). */
function composedLayer(nModes: number[]) {
  return (t: Record<string, tf.Tensor>): tf.Tensor => {
    const shape = t.h.shape as number[];
    const c = shape[4];
    return tf.tidy(() => {
      const dft = dftMatrices([shape[1], shape[2], shape[3]], nModes);
      const spec = spectralConv(t.h, t.wr, t.wi, dft);
      disposeDft(dft);
      const skip = tf.matMul(t.h.reshape([-1, c]), t.skip).reshape([
        ...shape.slice(0, 4),
        t.skip.shape[1] as number,
      ]);
      return tf.add(tf.add(spec, t.bias), skip);
    });
  };
}
