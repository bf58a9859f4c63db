/**
 * GINO configuration: the reference constructor's keyword arguments (snake_case), with the reference defaults for
 * every key not given.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** The reference GINO constructor's keyword arguments that this implementation supports. */
export interface GinoConfig {
  /** Coordinate dimension of the input GNO (3). */
  in_gno_coord_dim: number;
  /** Neighbour radius of the input GNO (standardised units). */
  in_gno_radius: number;
  /** Positional embedding ('transformer'). */
  gno_pos_embed_type: string;
  /** Frequencies per coordinate of the input-GNO embedding. */
  in_gno_pos_embed_channels: number;
  /** Frequency base of the input-GNO embedding. */
  in_gno_pos_embed_max_positions: number;
  /** Hidden widths of the input-GNO kernel MLP. */
  in_gno_channel_mlp_layers: number[];
  /** Output channels of the input GNO (= input window x columns). */
  in_gno_out_channels: number;
  /** Latent features concatenated to the grid (not supported: null). */
  latent_feature_channels: number | null;
  /** FNO layers. */
  fno_n_layers: number;
  /** FNO modes per axis (z is halved + 1). */
  fno_n_modes: number[];
  /** FNO width. */
  fno_hidden_channels: number;
  /** Bias on the 1x1 skips (false). */
  fno_skip_fno_bias: boolean;
  /** FFT normalisation ('forward'). */
  fno_fft_norm: string;
  /** Factorisation rank (no effect: dense weights). */
  fno_rank: number;
  /** Maximum modes (null = n_modes). */
  fno_max_n_modes: number[] | null;
  /** Hidden width of the lifting MLP. */
  lifting_channels: number;
  /** Coordinate dimension of the output GNO (3). */
  out_gno_coord_dim: number;
  /** Neighbour radius of the output GNO. */
  out_gno_radius: number;
  /** Positional embedding of the output GNO ('transformer'). */
  out_gno_pos_embed_type: string;
  /** Frequencies per coordinate of the output-GNO embedding. */
  out_gno_pos_embed_channels: number;
  /** Frequency base of the output-GNO embedding. */
  out_gno_pos_embed_max_positions: number;
  /** Hidden widths of the output-GNO kernel MLP. */
  out_gno_channel_mlp_layers: number[];
  /** Projection hidden width = ratio x FNO width. */
  projection_channel_ratio: number;
  /** Output channels (= output window x columns). */
  out_channels: number;
  /** Options beyond the reference (defaults reproduce it). */
  out_gno_reduction: "sum" | "mean";
}

/** The reference constructor's defaults. */
export const GINO_DEFAULTS: GinoConfig = {
  in_gno_coord_dim: 3,
  in_gno_radius: 0.03,
  gno_pos_embed_type: "transformer",
  in_gno_pos_embed_channels: 32,
  in_gno_pos_embed_max_positions: 10000,
  in_gno_channel_mlp_layers: [64, 64, 64],
  in_gno_out_channels: 3,
  latent_feature_channels: null,
  fno_n_layers: 4,
  fno_n_modes: [16, 16, 16],
  fno_hidden_channels: 128,
  fno_skip_fno_bias: false,
  fno_fft_norm: "forward",
  fno_rank: 1.0,
  fno_max_n_modes: null,
  lifting_channels: 128,
  out_gno_coord_dim: 3,
  out_gno_radius: 0.03,
  out_gno_pos_embed_type: "transformer",
  out_gno_pos_embed_channels: 32,
  out_gno_pos_embed_max_positions: 10000,
  out_gno_channel_mlp_layers: [64, 64, 64],
  projection_channel_ratio: 4,
  out_channels: 1,
  out_gno_reduction: "sum",
};

/**
 * The arguments the reference training script passes (gino-spec.md section 1.1) with windows 10/10: the
 * configuration of the reference figures and of the state_dict listed in section 4.
 */
export const REFERENCE_GINO: Partial<GinoConfig> = {
  in_gno_coord_dim: 3,
  in_gno_radius: 0.1,
  in_gno_out_channels: 10,
  in_gno_channel_mlp_layers: [32, 64, 32],
  fno_n_layers: 4,
  fno_n_modes: [8, 8, 8],
  fno_hidden_channels: 64,
  lifting_channels: 64,
  out_gno_coord_dim: 3,
  out_gno_radius: 0.1,
  out_gno_channel_mlp_layers: [32, 64, 32],
  projection_channel_ratio: 2,
  out_channels: 10,
};

/** Keys of the reference constructor that are accepted but have no effect here (non-linearities are GELU). */
const IGNORED = new Set([
  "in_gno_channel_mlp_non_linearity",
  "out_gno_channel_mlp_non_linearity",
  "fno_non_linearity",
  "use_open3d_neighbor_search",
]);

/** Fills in defaults and checks a configuration; errors name the key. */
export function resolveGinoConfig(config: Partial<GinoConfig> & Record<string, unknown> = {}): GinoConfig {
  const c = { ...GINO_DEFAULTS } as GinoConfig & Record<string, unknown>;
  for (const [k, v] of Object.entries(config)) {
    if (IGNORED.has(k)) continue;
    if (!(k in GINO_DEFAULTS)) throw new ToolError(`unknown GINO setting '${k}'`);
    if (v !== undefined) (c as Record<string, unknown>)[k] = v;
  }
  const bad = (k: string, why: string) => new ToolError(`GINO setting ${k}: ${why}`);
  if (c.in_gno_coord_dim !== 3 || c.out_gno_coord_dim !== 3) {
    throw bad("in/out_gno_coord_dim", "only 3 is supported");
  }
  if (c.gno_pos_embed_type !== "transformer" || c.out_gno_pos_embed_type !== "transformer") {
    throw bad("gno_pos_embed_type", "only 'transformer' is supported");
  }
  if (c.latent_feature_channels !== null) {
    throw bad("latent_feature_channels", "latent features are not supported");
  }
  if (c.fno_fft_norm !== "forward") throw bad("fno_fft_norm", "only 'forward' is supported");
  if (c.fno_skip_fno_bias) throw bad("fno_skip_fno_bias", "only false is supported");
  if (c.fno_n_modes.length !== 3) throw bad("fno_n_modes", "three mode counts are needed");
  for (const k of ["in_gno_radius", "out_gno_radius"] as const) {
    if (!(c[k] > 0)) throw bad(k, "must be positive");
  }
  for (
    const k of [
      "fno_n_layers",
      "fno_hidden_channels",
      "lifting_channels",
      "in_gno_out_channels",
      "out_channels",
      "projection_channel_ratio",
      "in_gno_pos_embed_channels",
      "out_gno_pos_embed_channels",
    ] as const
  ) {
    if (!Number.isInteger(c[k]) || c[k] < 1) throw bad(k, `must be a positive integer, got ${c[k]}`);
  }
  if (c.out_gno_reduction !== "sum" && c.out_gno_reduction !== "mean") {
    throw bad("out_gno_reduction", "sum or mean");
  }
  return c;
}
