/**
 * gino-gw: train Graph/Geometry-Informed Neural Operators (GINO) on variable-density groundwater simulations
 * split into spatial patches.
 *
 * This module re-exports the toolkit's public API for other Deno projects.
 *
 * @example
 * ```ts ignore
 * import { loadPatchDataset, PatchBatchSampler, BatchAssembler } from "./mod.ts";
 * const ds = await loadPatchDataset("data/henry/filter_patch", {
 *   targetCols: ["mass_concentration"], inputWindow: 10, outputWindow: 10,
 * });
 * const sampler = new PatchBatchSampler(ds.windowCounts("train"), { batchSize: 32, seed: 42 });
 * const assembler = new BatchAssembler(ds, 32);
 * sampler.beginEpoch();
 * for (let b = sampler.next(); b; b = sampler.next()) {
 *   const batch = assembler.assemble("train", b); // coords [N,3], inputs [B,N,Tin], targets [B,N,Tout]
 * }
 * ```
 *
 * @module
 */

export { CsvError, readCsvHeader, readNumericCsv, streamNumericCsv } from "./lib/csv.ts";
export type { NumericCsv, NumericCsvChunk, NumericCsvOptions } from "./lib/csv.ts";
export { encodeNpy, NpyError, readNpy, writeNpy } from "./lib/npy.ts";
export type { NpyArray, NpyData, NpyDtype } from "./lib/npy.ts";
export { writeFileAtomic, writeTextFileAtomic } from "./lib/atomic.ts";
export {
  countWindows,
  DataError,
  listPatchDirs,
  loadPatchDataset,
  OBS_COLUMNS,
  PatchDataset,
} from "./lib/dataset.ts";
export type { DatasetOptions, Normalization, ObsColumn, Part, Patch, WindowOptions } from "./lib/dataset.ts";
export { PatchBatchSampler } from "./lib/sampler.ts";
export type { SampledBatch, SamplerOptions, SamplerState } from "./lib/sampler.ts";
export { BatchAssembler } from "./lib/batch.ts";
export type { Batch } from "./lib/batch.ts";
export { Rng } from "./lib/rng.ts";
export type { RngState } from "./lib/rng.ts";
export { KdTree } from "./lib/kdtree.ts";
export { kmeans } from "./lib/kmeans.ts";
export type { KMeansResult } from "./lib/kmeans.ts";
export { arraySplit, listRawFiles, preparePatches } from "./lib/prepare.ts";
export type { PatchInfo, PrepareOptions, PrepareResult } from "./lib/prepare.ts";
export { formatSummary, summarizeDataset } from "./lib/summary.ts";
export type { DataSummary } from "./lib/summary.ts";
export { BackendError, initBackend, tf } from "./lib/tf.ts";
export type { BackendInfo, BackendName } from "./lib/tf.ts";
export { createGino, Gino, kernelWidths, relativeL2Loss } from "./lib/gino/model.ts";
export type { GinoGeometry, TorchTensor } from "./lib/gino/model.ts";
export { GINO_DEFAULTS, REFERENCE_GINO, resolveGinoConfig } from "./lib/gino/config.ts";
export type { GinoConfig } from "./lib/gino/config.ts";
export { neighborStats, radiusSearch } from "./lib/gino/neighbors.ts";
export type { Neighbors, NeighborStats } from "./lib/gino/neighbors.ts";
export { sinusoidalEmbedding } from "./lib/gino/embedding.ts";
export { dftMatrices, keptFrequencies, spectralConv } from "./lib/gino/spectral.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
} from "./lib/safetensors.ts";
export type { SafeTensor, SafetensorsFile } from "./lib/safetensors.ts";
export {
  HENRY_DEFAULTS,
  HENRY_DEMO,
  henryGrid,
  isochlorPositions,
  simulateHenry,
  writeHenry,
} from "./lib/henry.ts";
export type { HenryOptions, HenryState } from "./lib/henry.ts";
export { DEMO_DIR, ensureDemoData } from "./lib/demo.ts";
export { EXIT, ginoConfigFor, train } from "./lib/trainer.ts";
export { Adam } from "./lib/adam.ts";
export type { AdamState } from "./lib/adam.ts";
export { latentGrid, linspace32, predictWindow, trainStep } from "./lib/step.ts";
export type { ResidualSpec, StepOptions } from "./lib/step.ts";
export {
  CHECKPOINT_FORMAT,
  CheckpointError,
  loadCheckpoint,
  restoreTensors,
  saveCheckpoint,
  verifyCheckpointBytes,
} from "./lib/checkpoint.ts";
export type { Checkpoint, SessionRecord, TrainingState } from "./lib/checkpoint.ts";
export { findLatestCheckpoint, listRuns } from "./lib/runs.ts";
export {
  backupCommand,
  cleanCommand,
  exportCommand,
  importCommand,
  latestCommand,
  listCommand,
  showCommand,
  verifyCommand,
} from "./lib/manager.ts";
export { forecast, formatReport, predict } from "./lib/predict.ts";
export type { ErrorStats, PredictOptions, PredictorMetrics, PredictReport } from "./lib/predict.ts";
export { writeCurves } from "./lib/plot/curves.ts";
export { renderChart } from "./lib/plot/chart.ts";
export { Canvas, encodePng } from "./lib/plot/png.ts";
export type { Scalar, Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Variable } from "@tensorflow/tfjs";
export type { KernelReport } from "./lib/kernels.ts";
export type { Spread } from "./lib/summary.ts";
export type { ParamSpec } from "./lib/gino/model.ts";
export type { DftMatrices } from "./lib/gino/spectral.ts";
export type { CleanReport, LatestInfo, RunSummary, ShowInfo, VerifyReport } from "./lib/manager.ts";
export type { CheckpointFile, FoundCheckpoint, RunInfo } from "./lib/runs.ts";
export type { VerifyResult } from "./lib/checkpoint.ts";
export type { ChartSpec, Series } from "./lib/plot/chart.ts";
export type { Rgb } from "./lib/plot/png.ts";
export type { CurveData } from "./lib/plot/curves.ts";
export type { HenryRunInfo, HenryStats, WriteHenryOptions } from "./lib/henry.ts";
export type { TrainHooks } from "./lib/trainer.ts";
