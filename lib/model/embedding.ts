/**
 * The sinusoidal ("transformer") positional embedding of the GNOs: for each coordinate c and frequency
 * f_k = max_positions^(-k / (2 channels)), channels sin(p_c f_k) and cos(p_c f_k), laid out coordinate-major, then
 * frequency, then sin/cos interleaved (channel c * 2 * channels + 2k + s). Computed in float32 as the reference does.
 *
 * @module
 */

/** Embeds `coords` (flat [n, 3]) into a flat [n, 3 * 2 * channels] Float32Array. */
export function sinusoidalEmbedding(
  coords: ArrayLike<number>,
  channels: number,
  maxPositions: number,
): Float32Array {
  const n = coords.length / 3;
  const width = 3 * 2 * channels;
  const freqs = new Float32Array(channels);
  const base = Math.fround(1 / maxPositions);
  for (let k = 0; k < channels; k++) freqs[k] = Math.fround(Math.pow(base, Math.fround(k / (2 * channels))));
  const out = new Float32Array(n * width);
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < 3; c++) {
      const p = Math.fround(coords[i * 3 + c]);
      const o = i * width + c * 2 * channels;
      for (let k = 0; k < channels; k++) {
        const arg = Math.fround(p * freqs[k]);
        out[o + 2 * k] = Math.sin(arg);
        out[o + 2 * k + 1] = Math.cos(arg);
      }
    }
  }
  return out;
}
