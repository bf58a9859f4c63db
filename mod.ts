/**
 * gino-gw: train Graph/Geometry-Informed Neural Operators (GINO) on variable-density groundwater simulations
 * split into spatial patches.
 *
 * This module re-exports the toolkit's public API for other Deno projects.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { BatchAssembler, loadPatchDataset, PatchBatchSampler } from "./mod.ts";
 * const ds = await loadPatchDataset("tests/fixtures/py_patches/filter_patch", {
 *   targetCols: ["mass_concentration"], inputWindow: 3, outputWindow: 2,
 * });
 * const sampler = new PatchBatchSampler(ds.windowCounts("train"), { batchSize: 4, seed: 42 });
 * const assembler = new BatchAssembler(ds, 4);
 * sampler.beginEpoch();
 * for (let b = sampler.next(); b; b = sampler.next()) {
 *   const batch = assembler.assemble("train", b); // inputs [B, N, Tin], targets [B, N, Tout] of one patch
 *   assert.equal(batch.inputs.length, batch.b * batch.n * 3);
 * }
 * ```
 *
 * @module
 */

export { CsvError, readCsvHeader, readNumericCsv, streamNumericCsv } from "./lib/io/csv.ts";
export type { NumericCsv, NumericCsvChunk, NumericCsvOptions } from "./lib/io/csv.ts";
export { encodeNpy, NpyError, readNpy, writeNpy } from "./lib/io/npy.ts";
export type { NpyArray, NpyData, NpyDtype } from "./lib/io/npy.ts";
export { writeFileAtomic, writeTextFileAtomic } from "./lib/io/atomic.ts";
export {
  disItems,
  encodeGrb,
  Mf6Error,
  Mf6OutputFile,
  Mf6OutputWriter,
  readGrbItems,
  readMf6Grid,
} from "./lib/io/mf6.ts";
export type { GrbItem, GrbValue, Mf6Grid, Mf6Record, Mf6Step } from "./lib/io/mf6.ts";
export { encodeVtu, prismCells, vertexCells, VTK, writePvd } from "./lib/io/vtu.ts";
export type { VtkArray, VtkCells } from "./lib/io/vtu.ts";
export {
  countWindows,
  DataError,
  listPatchDirs,
  loadPatchDataset,
  OBS_COLUMNS,
  PatchDataset,
} from "./lib/data/dataset.ts";
export type {
  DatasetOptions,
  Normalization,
  ObsColumn,
  Part,
  Patch,
  WindowOptions,
} from "./lib/data/dataset.ts";
export { PatchBatchSampler } from "./lib/data/sampler.ts";
export type { SampledBatch, SamplerOptions, SamplerState } from "./lib/data/sampler.ts";
export { BatchAssembler } from "./lib/data/batch.ts";
export type { Batch } from "./lib/data/batch.ts";
export { Rng } from "./lib/data/rng.ts";
export type { RngState } from "./lib/data/rng.ts";
export { KdTree } from "./lib/data/kdtree.ts";
export { kmeans } from "./lib/data/kmeans.ts";
export type { KMeansResult } from "./lib/data/kmeans.ts";
export { arraySplit, listRawFiles, MF6_GRID_FILE, preparePatches } from "./lib/data/prepare.ts";
export type { Mf6Source, PatchInfo, PrepareOptions, PrepareResult } from "./lib/data/prepare.ts";
export { formatSummary, summarizeDataset } from "./lib/data/summary.ts";
export type { DataSummary } from "./lib/data/summary.ts";
export { BackendError, initBackend, tf } from "./lib/model/backend.ts";
export type { BackendInfo, BackendName, GpuAdapterInfo } from "./lib/model/backend.ts";
export { createGino, Gino, kernelWidths, relativeL2Loss } from "./lib/model/gino.ts";
export type { GeometryHost, GinoGeometry, TorchTensor } from "./lib/model/gino.ts";
export { GINO_DEFAULTS, REFERENCE_GINO, resolveGinoConfig } from "./lib/model/config.ts";
export type { GinoConfig } from "./lib/model/config.ts";
export { neighborStats, radiusSearch } from "./lib/model/neighbors.ts";
export type { Neighbors, NeighborStats } from "./lib/model/neighbors.ts";
export { sinusoidalEmbedding } from "./lib/model/embedding.ts";
export { dftMatrices, keptFrequencies, spectralConv } from "./lib/model/spectral.ts";
export {
  decodeSafetensors,
  encodeSafetensors,
  readSafetensors,
  SafetensorsError,
  writeSafetensors,
} from "./lib/io/safetensors.ts";
export type { SafeTensor, SafetensorsFile } from "./lib/io/safetensors.ts";
export {
  HENRY_DEFAULTS,
  HENRY_DEMO,
  henryGrid,
  isochlorPositions,
  simulateHenry,
  writeHenry,
} from "./lib/sim/henry.ts";
export type { HenryOptions, HenryState } from "./lib/sim/henry.ts";
export { DEMO_DIR, ensureDemoData } from "./lib/data/demo.ts";
export { train } from "./lib/train/loop.ts";
export {
  allAgree,
  bcastString,
  currentWorld,
  initWorld,
  mpiLibraryLoaded,
  SINGLE,
} from "./lib/parallel/world.ts";
export type { World } from "./lib/parallel/world.ts";
export { candidateLibraries, detectLaunch, MpiError } from "./lib/parallel/mpi.ts";
export type { MpiLaunch } from "./lib/parallel/mpi.ts";
export type { TrainOptions, TrainOptions as TrainHooks } from "./lib/train/loop.ts";
export { EXIT, ToolError } from "./lib/errors.ts";
export {
  defaultSettings,
  ginoConfigFor,
  SETTING_SPECS,
  settingsFromConfig,
  settingsFromFlags,
  settingsFromSaved,
  validateSettings,
} from "./lib/train/settings.ts";
export type { FlagSpec, FlagType } from "./lib/flagspec.ts";
export type { RunLayout } from "./lib/train/layout.ts";
export type { BatchGradients, BatchShare, GradientReduction, LossOptions } from "./lib/train/step.ts";
export type { RunState } from "./lib/tools/manager.ts";
export type {
  DataSettings,
  ModelSettings,
  OptimSettings,
  ResumeRule,
  RunSettings,
  SettingPath,
  SettingSpec,
  TrainSettings,
} from "./lib/train/settings.ts";
export { planResume } from "./lib/train/resume.ts";
export type { ResumeOptions, ResumePlan } from "./lib/train/resume.ts";
export { Adam } from "./lib/train/adam.ts";
export type { AdamState } from "./lib/train/adam.ts";
export { latentGrid, linspace32 } from "./lib/model/latent.ts";
export { predictWindow, residualBase, residualOf, startAtBase } from "./lib/model/residual.ts";
export type { ResidualBase, ResidualSpec } from "./lib/model/residual.ts";
export { trainStep } from "./lib/train/step.ts";
export {
  defaultGpuMemoryBudget,
  GinoGpu,
  gpuEngineFor,
  GpuMemoryError,
  LOG_SLOTS,
} from "./lib/model/gpu/engine.ts";
export type {
  GpuMemoryEstimate,
  GpuOptimizer,
  GpuStepOptions,
  ProfiledDispatch,
  StepLosses,
} from "./lib/model/gpu/engine.ts";
export { GpuDeviceError, GpuRuntime } from "./lib/model/gpu/runtime.ts";
export type {
  BindingSpec,
  Dispatch,
  DispatchCost,
  GpuCounters,
  GpuLimits,
  Kernel,
  KernelSpec,
} from "./lib/model/gpu/runtime.ts";
export type { ParamLayout } from "./lib/model/gpu/layout.ts";
export type { StepOptions } from "./lib/train/step.ts";
export {
  CHECKPOINT_FORMAT,
  CheckpointError,
  loadCheckpoint,
  restoreTensors,
  saveCheckpoint,
  verifyCheckpointBytes,
} from "./lib/train/checkpoint.ts";
export type { Checkpoint, SessionRecord, TrainingState } from "./lib/train/checkpoint.ts";
export { findLatestCheckpoint, listRuns } from "./lib/train/runs.ts";
export {
  backupCommand,
  cleanCommand,
  exportCommand,
  importCommand,
  latestCommand,
  listCommand,
  showCommand,
  verifyCommand,
} from "./lib/tools/manager.ts";
export { forecast, formatReport, predict } from "./lib/tools/predict.ts";
export type { WindowRunner } from "./lib/tools/predict.ts";
export type { ErrorStats, PredictOptions, PredictorMetrics, PredictReport } from "./lib/tools/predict.ts";
export { curvesHtml, curvesSvg, writeCurves } from "./lib/plot/curves.ts";
export { renderChart } from "./lib/plot/chart.ts";
export { renderFieldMaps } from "./lib/plot/fieldmap.ts";
export { writeFigure } from "./lib/plot/figure.ts";
export { svgToPng } from "./lib/plot/raster.ts";
export { Svg } from "./lib/plot/svg.ts";
export { Canvas, encodePng } from "./lib/plot/png.ts";
export type { Scalar, Tensor, Tensor1D, Tensor2D, Tensor3D, Tensor4D, Variable } from "@tensorflow/tfjs";
export type { KernelReport } from "./lib/model/kernels/register.ts";
export type { Spread } from "./lib/data/summary.ts";
export type { ParamSpec } from "./lib/model/gino.ts";
export type { DftMatrices } from "./lib/model/spectral.ts";
export type { CleanReport, LatestInfo, RunSummary, ShowInfo, VerifyReport } from "./lib/tools/manager.ts";
export type { CheckpointFile, FoundCheckpoint, RunInfo } from "./lib/train/runs.ts";
export type { VerifyResult } from "./lib/train/checkpoint.ts";
export type { ChartSpec, Series } from "./lib/plot/chart.ts";
export type { Rgb, Stroke, TextStyle } from "./lib/plot/svg.ts";
export type { HenryGridSpec } from "./lib/plot/fieldmap.ts";
export type { CurveData } from "./lib/plot/curves.ts";
export type { HenryRunInfo, HenryStats, WriteHenryOptions } from "./lib/sim/henry.ts";
