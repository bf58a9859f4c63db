/**
 * The latent grid a GINO works on for a patch, built as the reference does: per axis `linspace(min, max, G)` over
 * the patch's bounding box in float32, combined in ij order.
 *
 * @module
 */

/**
 * The latent grid the reference builds for a patch: per axis `linspace(min, max, G)` over the point cloud's
 * bounding box in float32 (computed as torch.linspace does), combined in ij order (z fastest). Flat [G1*G2*G3, 3].
 */
export function latentGrid(points: ArrayLike<number>, grid: number[]): Float32Array {
  const n = points.length / 3;
  const axes = [0, 1, 2].map((a) => {
    let lo = Infinity, hi = -Infinity;
    for (let i = 0; i < n; i++) {
      const v = points[i * 3 + a];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    return linspace32(Math.fround(lo), Math.fround(hi), grid[a]);
  });
  const [g1, g2, g3] = grid;
  const out = new Float32Array(g1 * g2 * g3 * 3);
  let o = 0;
  for (let i = 0; i < g1; i++) {
    for (let j = 0; j < g2; j++) {
      for (let k = 0; k < g3; k++) {
        out[o++] = axes[0][i];
        out[o++] = axes[1][j];
        out[o++] = axes[2][k];
      }
    }
  }
  return out;
}

/** torch.linspace in float32: start + step * i for the first half, end - step * (steps - 1 - i) for the rest. */
export function linspace32(start: number, end: number, steps: number): Float32Array {
  const out = new Float32Array(steps);
  if (steps === 1) {
    out[0] = start;
    return out;
  }
  const f = Math.fround;
  const step = f(f(end - start) / (steps - 1));
  const half = Math.floor(steps / 2);
  for (let i = 0; i < steps; i++) {
    out[i] = i < half ? f(start + f(step * i)) : f(end - f(step * (steps - i - 1)));
  }
  return out;
}
