/**
 * The data summary printed by `train --dry-run`: what training would see, as numbers.
 *
 * @module
 */

import type { Normalization, PatchDataset } from "./dataset.ts";

/** Min / mean / max of a count over patches. */
export interface Spread {
  /** Smallest over the patches. */
  min: number;
  /** Mean over the patches. */
  mean: number;
  /** Largest over the patches. */
  max: number;
  /** Sum over the patches. */
  total: number;
}

/** The dry run's summary (also its `--json` output). */
export interface DataSummary {
  /** The patch folder that was loaded. */
  data_dir: string;
  /** Number of patches. */
  patches: number;
  /** Training windows in all patches. */
  train_samples: number;
  /** Validation windows in all patches. */
  val_samples: number;
  /** Training batches per epoch. */
  train_batches: number;
  /** Validation batches. */
  val_batches: number;
  /** Windows per batch. */
  batch_size: number;
  /** Points (core + ghost) per patch. */
  points_per_patch: Spread;
  /** Core points per patch. */
  core_points: Spread;
  /** Ghost points per patch. */
  ghost_points: Spread;
  /** Time steps per patch. */
  time_steps: Spread;
  /** Steps in the training part per patch. */
  train_steps: Spread;
  /** Target columns, in channel order. */
  target_cols: string[];
  /** Input steps T_in. */
  input_window_size: number;
  /** Output steps T_out. */
  output_window_size: number;
  /** Steps between window starts. */
  window_stride: number;
  /** Share of each series held out for validation. */
  val_ratio: number;
  /** Patches whose training part is shorter than a window. */
  patches_without_train_samples: string[];
  /** Patches whose validation part is shorter than a window. */
  patches_without_val_samples: string[];
  /** Points dropped because of NaN/Inf values. */
  dropped_points: number;
  /** Normalisation statistics. */
  normalization: Normalization;
  /** Bytes of the loaded arrays and of the .npy arrays. */
  memory: { dataset_bytes: number; npy_bytes: number };
}

function spread(values: number[]): Spread {
  const total = values.reduce((a, b) => a + b, 0);
  return { min: Math.min(...values), mean: total / values.length, max: Math.max(...values), total };
}

/** Summarises a loaded dataset for a given batch size. */
export function summarizeDataset(ds: PatchDataset, batchSize: number): DataSummary {
  const tr = ds.windowCounts("train"), va = ds.windowCounts("val");
  const sum = (a: number[]) => a.reduce((x, y) => x + y, 0);
  const batches = (a: number[]) => sum(a.map((c) => Math.ceil(c / batchSize)));
  return {
    data_dir: ds.dir,
    patches: ds.patches.length,
    train_samples: sum(tr),
    val_samples: sum(va),
    train_batches: batches(tr),
    val_batches: batches(va),
    batch_size: batchSize,
    points_per_patch: spread(ds.patches.map((p) => p.n)),
    core_points: spread(ds.patches.map((p) => p.nCore)),
    ghost_points: spread(ds.patches.map((p) => p.nGhost)),
    time_steps: spread(ds.patches.map((p) => p.steps)),
    train_steps: spread(ds.patches.map((p) => p.trainSteps)),
    target_cols: [...ds.options.targetCols],
    input_window_size: ds.options.inputWindow,
    output_window_size: ds.options.outputWindow,
    window_stride: ds.options.stride,
    val_ratio: ds.options.valRatio,
    patches_without_train_samples: ds.patches.filter((_, i) => tr[i] === 0).map((p) => p.name),
    patches_without_val_samples: ds.patches.filter((_, i) => va[i] === 0).map((p) => p.name),
    dropped_points: sum(ds.patches.map((p) => p.droppedPoints)),
    normalization: ds.normalization,
    memory: { dataset_bytes: ds.bytes, npy_bytes: ds.rawBytes },
  };
}

/** Human-readable form of a {@linkcode DataSummary}. */
export function formatSummary(s: DataSummary): string {
  const sp = (x: Spread) => `${x.min} / ${x.mean.toFixed(1)} / ${x.max}`;
  const n = s.normalization;
  const lines = [
    `data:              ${s.data_dir}`,
    `patches:           ${s.patches}`,
    `points per patch:  ${sp(s.points_per_patch)} (min / mean / max; core ${sp(s.core_points)}, ghost ${
      sp(s.ghost_points)
    })`,
    `time steps:        ${sp(s.time_steps)} (training part ${sp(s.train_steps)}, val ratio ${s.val_ratio})`,
    `targets:           ${
      s.target_cols.join(", ")
    }; windows ${s.input_window_size} in -> ${s.output_window_size} out, stride ${s.window_stride}`,
    `train:             ${s.train_samples} samples in ${s.train_batches} batches of up to ${s.batch_size}`,
    `validation:        ${s.val_samples} samples in ${s.val_batches} batches`,
    `coordinates:       mean ${n.coordMean.map((v) => v.toPrecision(6)).join(", ")}; std ${
      n.coordStd.map((v) => v.toPrecision(6)).join(", ")
    }`,
    ...n.columns.map((c, i) =>
      `${c.padEnd(19)}mean ${n.mean[i].toPrecision(6)}, std ${n.std[i].toPrecision(6)}`
    ),
    `memory:            ${(s.memory.dataset_bytes / 2 ** 20).toFixed(1)} MiB loaded (npy arrays: ${
      (s.memory.npy_bytes / 2 ** 20).toFixed(1)
    } MiB)`,
  ];
  if (s.patches_without_train_samples.length) {
    lines.push(
      `no training windows (series too short for ${s.input_window_size}+${s.output_window_size} steps): ${
        s.patches_without_train_samples.join(", ")
      }`,
    );
  }
  if (s.patches_without_val_samples.length) {
    lines.push(`no validation windows: ${s.patches_without_val_samples.join(", ")}`);
  }
  if (s.dropped_points) lines.push(`dropped points with NaN/Inf: ${s.dropped_points}`);
  return lines.join("\n");
}
