/**
 * The spectral convolution of the FNO blocks as truncated DFT matrices (real matmuls only, differentiable with
 * standard ops; tfjs has no FFT gradient). Channels last: h is [B, G1, G2, G3, C].
 *
 * Forward: X[k] = G^-3 sum_x h[x] e^{-2 pi i k.x / G} over the kept modes: x, y frequencies
 * `floor((G - m) / 2) - floor(G / 2) + a` (a = 0..m-1; for m = 8: -4..3), z frequencies 0..floor(m_z / 2).
 * Channel mixing per mode with complex weights; inverse `out[x] = sum_k w_kz Re(Y[k] e^{+2 pi i k.x / G})` with
 * w = 1 for kz = 0 (and a Nyquist kz) and 2 otherwise: exactly what irfftn of the zero-filled spectrum gives.
 *
 * @module
 */

import * as tf from "@tensorflow/tfjs";

/** Kept signed frequencies along a full (complex) axis of size g for m modes. */
export function keptFrequencies(g: number, m: number): number[] {
  const start = Math.floor((g - m) / 2) - Math.floor(g / 2);
  return Array.from({ length: m }, (_, a) => start + a);
}

/** DFT matrices of one grid shape and mode set (tensors, kept for the life of the model). */
export interface DftMatrices {
  /** Latent grid [G1, G2, G3] the matrices are for. */
  grid: number[];
  /** Kept mode counts along x, y, z. */
  modes: [number, number, number]; // kept counts along x, y, z
  // forward, transposed for A @ h with A [1, modes, G]
  /** cos part of the forward DFT along z, [1, mz, G3]. */
  ezc: tf.Tensor3D;
  /** -sin part of the forward DFT along z, [1, mz, G3]. */
  ezsNeg: tf.Tensor3D;
  /** cos part of the forward DFT along y, [1, my, G2]. */
  eyc: tf.Tensor3D;
  /** sin part of the forward DFT along y, [1, my, G2]. */
  eys: tf.Tensor3D;
  /** cos part of the forward DFT along x, [1, mx, G1]. */
  exc: tf.Tensor3D;
  /** sin part of the forward DFT along x, [1, mx, G1]. */
  exs: tf.Tensor3D;
  // inverse [1, G, modes]
  /** cos part of the inverse DFT along x, [1, G1, mx]. */
  fxc: tf.Tensor3D;
  /** sin part of the inverse DFT along x, [1, G1, mx]. */
  fxs: tf.Tensor3D;
  /** cos part of the inverse DFT along y, [1, G2, my]. */
  fyc: tf.Tensor3D;
  /** sin part of the inverse DFT along y, [1, G2, my]. */
  fys: tf.Tensor3D;
  /** cos part of the inverse real DFT along z with its 1/2 weights, [1, G3, mz]. */
  fzc: tf.Tensor3D;
  /** -sin part of the inverse real DFT along z with its 1/2 weights, [1, G3, mz]. */
  fzsNeg: tf.Tensor3D;
}

/** Number of kept modes per axis for the reference's `n_modes` (z is the rfft axis: floor(m / 2) + 1). */
export function keptModeCounts(nModes: number[]): [number, number, number] {
  return [nModes[0], nModes[1], Math.floor(nModes[2] / 2) + 1];
}

/** Builds the DFT matrices for grid [G1, G2, G3] and reference `n_modes`. */
export function dftMatrices(grid: number[], nModes: number[]): DftMatrices {
  const [g1, g2, g3] = grid;
  const [mx, my, mz] = keptModeCounts(nModes);
  if (mx > g1 || my > g2 || mz > Math.floor(g3 / 2) + 1) {
    throw new Error(
      `fno_n_modes ${nModes} need a latent grid of at least ${mx} x ${my} x ${2 * (mz - 1)}, got ${grid}`,
    );
  }
  const fx = keptFrequencies(g1, mx), fy = keptFrequencies(g2, my);
  const fz = Array.from({ length: mz }, (_, c) => c);
  const scale = 1 / (g1 * g2 * g3);
  // forward [1, modes, G]: entry (k, x) = trig(2 pi f_k x / G)
  const fwd = (g: number, f: number[], trig: (t: number) => number, s: number) => {
    const a = new Float32Array(f.length * g);
    for (let k = 0; k < f.length; k++) {
      for (let x = 0; x < g; x++) a[k * g + x] = s * trig((2 * Math.PI * f[k] * x) / g);
    }
    return tf.tensor3d(a, [1, f.length, g]);
  };
  // inverse [1, G, modes]: entry (x, k) = w_k trig(2 pi f_k x / G)
  const inv = (g: number, f: number[], trig: (t: number) => number, w: (k: number) => number) => {
    const a = new Float32Array(g * f.length);
    for (let x = 0; x < g; x++) {
      for (let k = 0; k < f.length; k++) a[x * f.length + k] = w(k) * trig((2 * Math.PI * f[k] * x) / g);
    }
    return tf.tensor3d(a, [1, g, f.length]);
  };
  const one = () => 1;
  const wz = (k: number) => (fz[k] === 0 || 2 * fz[k] === g3 ? 1 : 2);
  return {
    grid: [g1, g2, g3],
    modes: [mx, my, mz],
    ezc: fwd(g3, fz, Math.cos, scale),
    ezsNeg: fwd(g3, fz, Math.sin, -scale),
    eyc: fwd(g2, fy, Math.cos, 1),
    eys: fwd(g2, fy, Math.sin, 1),
    exc: fwd(g1, fx, Math.cos, 1),
    exs: fwd(g1, fx, Math.sin, 1),
    fxc: inv(g1, fx, Math.cos, one),
    fxs: inv(g1, fx, Math.sin, one),
    fyc: inv(g2, fy, Math.cos, one),
    fys: inv(g2, fy, Math.sin, one),
    fzc: inv(g3, fz, Math.cos, wz),
    fzsNeg: inv(g3, fz, (t) => -Math.sin(t), wz),
  };
}

/** Frees the matrices. */
export function disposeDft(d: DftMatrices): void {
  for (const v of Object.values(d)) if (v instanceof tf.Tensor) v.dispose();
}

/**
 * Spectral convolution of h [B, G1, G2, G3, C] with complex weights (wr, wi: [M, C, O], mode index
 * m = (a * my + b) * mz + c). Returns [B, G1, G2, G3, O] (without the bias).
 */
export function spectralConv(h: tf.Tensor, wr: tf.Tensor, wi: tf.Tensor, d: DftMatrices): tf.Tensor {
  return tf.tidy(() => {
    const [b, g1, g2, g3, c] = h.shape as number[];
    const [mx, my, mz] = d.modes;
    const o = wr.shape[2] as number;
    const mm = tf.matMul;
    // z: [B*G1*G2, G3, C] -> [B*G1*G2, mz, C]
    const hz = h.reshape([b * g1 * g2, g3, c]);
    const ar = mm(d.ezc, hz).reshape([b * g1, g2, mz * c]);
    const ai = mm(d.ezsNeg, hz).reshape([b * g1, g2, mz * c]);
    // y: (ar + i ai)(cos - i sin)
    const br = tf.add(mm(d.eyc, ar), mm(d.eys, ai)).reshape([b, g1, my * mz * c]);
    const bi = tf.sub(mm(d.eyc, ai), mm(d.eys, ar)).reshape([b, g1, my * mz * c]);
    // x
    const xr = tf.add(mm(d.exc, br), mm(d.exs, bi)); // [B, mx, my*mz*C]
    const xi = tf.sub(mm(d.exc, bi), mm(d.exs, br));
    const m = mx * my * mz;
    const toModes = (t: tf.Tensor) => t.reshape([b, m, c]).transpose([1, 0, 2]); // [M, B, C]
    const xrm = toModes(xr), xim = toModes(xi);
    const yr = tf.sub(mm(xrm, wr), mm(xim, wi)); // [M, B, O]
    const yi = tf.add(mm(xrm, wi), mm(xim, wr));
    const fromModes = (t: tf.Tensor) => t.transpose([1, 0, 2]).reshape([b, mx, my * mz * o]);
    const yrb = fromModes(yr), yib = fromModes(yi);
    // inverse x: (yr + i yi)(cos + i sin)
    const zr = tf.sub(mm(d.fxc, yrb), mm(d.fxs, yib)).reshape([b * g1, my, mz * o]);
    const zi = tf.add(mm(d.fxs, yrb), mm(d.fxc, yib)).reshape([b * g1, my, mz * o]);
    // inverse y
    const ur = tf.sub(mm(d.fyc, zr), mm(d.fys, zi)).reshape([b * g1 * g2, mz, o]);
    const ui = tf.add(mm(d.fys, zr), mm(d.fyc, zi)).reshape([b * g1 * g2, mz, o]);
    // inverse z, real part with weights
    const out = tf.add(mm(d.fzc, ur), mm(d.fzsNeg, ui));
    return out.reshape([b, g1, g2, g3, o]);
  });
}
