/**
 * What a training session works with, built before anything is written: the model and optimiser (restored from
 * the checkpoint being resumed), the samplers, the geometry of every patch, the micro-batch size and the training
 * state to continue from.
 *
 * @module
 */

import type { SpaceReserve } from "../io/disk_full.ts";
import { createGino } from "../model/gino.ts";
import type { Gino, GinoGeometry } from "../model/gino.ts";
import { latentGrid } from "../model/latent.ts";
import { residualOf, startAtBase } from "../model/residual.ts";
import { fitTemporalBase } from "./base_fit.ts";
import type { ResidualSpec } from "../model/residual.ts";
import { PatchBatchSampler } from "../data/sampler.ts";
import { BatchAssembler } from "../data/batch.ts";
import type { PatchDataset } from "../data/dataset.ts";
import { withPath } from "../errors.ts";
import { Adam } from "./adam.ts";
import { autoMicroBatch, shareMicroBatch } from "./step.ts";
import type { GradientReduction } from "./step.ts";
import { allReduceGradients } from "./reduce.ts";
import type { ReductionStats } from "./reduce.ts";
import type { World } from "../parallel/world.ts";
import { CHECKPOINT_FORMAT, CheckpointError, restoreTensors } from "./checkpoint.ts";
import type { Checkpoint, SessionRecord, TrainingState } from "./checkpoint.ts";
import type { RunLayout } from "./layout.ts";
import { ginoConfigFor } from "./settings.ts";
import type { TrainSettings } from "./settings.ts";
import { freshSchedule, lrAt, resumeSchedule } from "./schedule.ts";
import type { PolicySettings } from "./policy.ts";
import type { RunLock, RunLockInfo } from "./runlock.ts";
import type { StopControl } from "./stopping.ts";
import type { RunLog } from "./log.ts";
import { gpuEngineFor, gpuEngineRuns } from "../model/gpu/engine.ts";
import type { GpuCounters } from "../model/gpu/runtime.ts";
import type { GinoGpu } from "../model/gpu/engine.ts";

/** The model, data and state of a session (the run folder parts are added once it is opened). */
export interface SessionParts {
  /** The settings the session runs with. */
  s: TrainSettings;
  /** The training data. */
  ds: PatchDataset;
  /** The model; its weights are those of the resumed checkpoint, if any. */
  model: Gino;
  /** The optimiser, with the resumed moments. */
  adam: Adam;
  /** Training batches (one patch each), positioned where the resumed checkpoint stopped. */
  sampler: PatchBatchSampler;
  /** Validation batches, in order. */
  valSampler: PatchBatchSampler;
  /** Reusable batch buffers. */
  assembler: BatchAssembler;
  /** Geometry of each patch, by patch index. */
  geometries: GinoGeometry[];
  /** Windows per forward/backward pass. */
  micro: number;
  /** Windows per forward pass of validation (the validation sampler's batches are cut into these). */
  valMicro: number;
  /** Residual prediction, when the model predicts the change from the last input step. */
  residual?: ResidualSpec;
  /** The training state to continue from. */
  state: TrainingState;
  /** The processes training together (one, or the ranks of an MPI job). */
  world: World;
  /** The gradient reduction over the ranks (undefined for one process). */
  reduce?: GradientReduction;
  /** Time and bytes of the reductions so far. */
  reduction: ReductionStats;
  /** The GPU engine (webgpu backend): steps, validation and prediction as recorded WGSL dispatches. */
  engine?: GinoGpu;
}

/** A session with its run folder open. */
export interface Session extends SessionParts {
  /** Where the run's files are. */
  layout: RunLayout;
  /** The run, held by this session. */
  lock: RunLock;
  /** This session's record (in `state.history.sessions` once it trains). */
  record: SessionRecord;
  /** The run's global step when this session started (it trained nothing while they are equal). */
  startStep: number;
  /** Which checkpoint files to write when. */
  policy: PolicySettings;
  /** Signals and time limit. */
  stop: StopControl;
  /** The run's log. */
  log: RunLog;
  /** The lock file a session before this one left (it did not end cleanly), if any. */
  previousLock?: RunLockInfo;
  /** True on the process that writes the run's files (rank 0). */
  writer: boolean;
  /** Epochs of the history the run's checkpoints hold (at the start, then after each save). */
  savedEpochs?: number;
  /** Disk space kept for the session's last words when the disk fills (see `SpaceReserve`). */
  reserve?: SpaceReserve;
  /** The history and curves on disk, HTML included, hold this session's closed record (nothing left to write). */
  historyFinal?: boolean;
  /** How much longer than the others the session's first step took (compiling kernels), ms; for a time budget. */
  firstStepExtraMs?: number;
  /** What the GPU engine was asked per training step in the last epoch's steps (validation not included). */
  gpuPerStep?: GpuCounters;
}

/** Builds the parts of a session (see the module documentation). Writes nothing. */
export function prepareSession(
  s: TrainSettings,
  ds: PatchDataset,
  ckpt: Checkpoint | undefined,
  o: {
    imported: boolean;
    learningRateGiven: boolean;
    forceResume: boolean;
    runName: string;
    log: RunLog;
    world: World;
  },
): SessionParts {
  const model = createGino(ginoConfigFor(s), s.data.seed);
  const adam = new Adam(model.variables, s.optim.learningRate);
  const { sampler, valSampler } = samplersOf(s, ds, !gpuEngineRuns());
  const state = ckpt
    ? resumedState(s, ckpt, { model, adam, sampler, ...o })
    : freshState(s, model, adam, sampler, ds, o.runName);
  // a time budget is planned once the first steps are timed (a budget given to a resumed run: from there on)
  if (s.optim.timeBudget !== undefined && state.scheduler.budget === undefined) state.scheduler.budget = null;
  if (!ckpt && s.model.residual) startAtBase(model);
  const cols = s.data.targetCols.length;
  if (s.model.residual && s.model.residualBase === "fitted" && !state.residual_fit) {
    if (ckpt) {
      throw new CheckpointError(`${ckpt.path}: the fitted residual base is missing from the checkpoint`);
    }
    state.residual_fit = fitTemporalBase(ds.patches, cols, s.data.inputWindow, s.data.outputWindow);
  }
  adam.lr = lrAt(state.scheduler, state.global_step);
  state.config = structuredClone(s);
  const geometries = patchGeometries(s, ds, model, o.log);
  const engine = gpuEngineFor(model);
  const micro = engine
    ? (s.optim.microBatch ?? shareMicroBatch(s.data.batchSize, s.data.batchSize, o.world.size))
    : microBatchOf(s, ds, geometries, model.config.fno_hidden_channels, o.world, s.data.batchSize);
  const valMicro = engine ? micro : microBatchOf(
    s,
    ds,
    geometries,
    model.config.fno_hidden_channels,
    o.world,
    valSampler.batchSize,
  );
  if (engine) {
    logGpuPasses(engine, geometries, micro, o.log);
    engine.reserve(geometries, s.data.batchSize, micro);
  }
  const reduction: ReductionStats = { calls: 0, ms: 0, bytes: 0 };
  return {
    s,
    ds,
    model,
    adam,
    sampler,
    valSampler,
    assembler: new BatchAssembler(ds, Math.max(s.data.batchSize, valSampler.batchSize)),
    geometries,
    micro,
    valMicro,
    residual: residualOf(s.model, cols, s.data.inputWindow, s.data.outputWindow, state.residual_fit),
    state,
    world: o.world,
    reduce: allReduceGradients(o.world, reduction),
    reduction,
    engine,
  };
}

/** One line on how the GPU engine runs each micro-batch (passes sized to the memory budget). */
function logGpuPasses(engine: GinoGpu, geometries: GinoGeometry[], micro: number, log: RunLog): void {
  const pass = Math.min(...geometries.map((g) => engine.passSize(g)));
  const per = Math.max(...geometries.map((g) => engine.memoryPerWindow(g).perWindowBytes));
  const mib = (b: number) => (b / 2 ** 20).toFixed(0);
  log.info(
    `GPU engine: one command buffer per step; ${
      pass >= micro
        ? `each micro-batch of ${micro} in one pass`
        : `micro-batches of ${micro} in passes of up to ${pass} windows`
    } (${mib(per)} MiB of activations per window, budget ${
      mib(engine.memoryBudget)
    } MiB: GINO_GW_GPU_MEMORY)`,
  );
}

/**
 * Windows per validation batch where tfjs runs the model: a forward pass alone, so batches larger than training's
 * share each pass's fixed costs (the kernel MLPs, the calls) over more windows; 16 evaluate the demo's 216
 * validation windows in 0.72x the time of batches of 4 (2 cores). The GPU engine validates in training's batches
 * (its buffers are sized for them).
 */
export const VAL_BATCH = 16;

/**
 * The training sampler (shuffled as set, seeded) and the validation sampler (in order; batches of at least
 * {@linkcode VAL_BATCH} windows where `largeVal`).
 */
function samplersOf(s: TrainSettings, ds: PatchDataset, largeVal: boolean) {
  const sampler = new PatchBatchSampler(ds.windowCounts("train"), {
    batchSize: s.data.batchSize,
    shuffleWithinBatches: s.data.shuffleWithinBatches,
    shufflePatches: s.data.shufflePatches,
    seed: s.data.seed + 1,
  });
  const valSampler = new PatchBatchSampler(ds.windowCounts("val"), {
    batchSize: largeVal ? Math.max(s.data.batchSize, VAL_BATCH) : s.data.batchSize,
    shuffleWithinBatches: false,
    shufflePatches: false,
  });
  return { sampler, valSampler };
}

/**
 * `--micro-batch`, else sized to memory (as for training: validation's forward passes need less); with several
 * ranks, each gets as many micro-batches of every batch of `batch` windows.
 */
function microBatchOf(
  s: TrainSettings,
  ds: PatchDataset,
  geometries: GinoGeometry[],
  hidden: number,
  world: World,
  batch: number,
): number {
  if (s.optim.microBatch) return s.optim.microBatch;
  const sizes = ds.patches.map((p, i) => ({
    n: p.n,
    edges: geometries[i].stats.in.edges + geometries[i].stats.out.edges,
  }));
  const fits = autoMicroBatch(sizes, s.model.latentGrid, hidden, batch);
  return shareMicroBatch(fits, batch, world.size);
}

/** Frees the tensors of a session. */
export function disposeSession(p: SessionParts): void {
  p.engine?.dispose();
  for (const g of p.geometries) g.dispose();
  p.adam.dispose();
  p.model.dispose();
}

/** The training state of a run that starts from scratch. */
function freshState(
  s: TrainSettings,
  model: Gino,
  adam: Adam,
  sampler: PatchBatchSampler,
  ds: PatchDataset,
  runName: string,
): TrainingState {
  return {
    format: CHECKPOINT_FORMAT,
    epoch: 0,
    step_in_epoch: 0,
    partial_epoch: { loss_sum: 0, samples: 0, seconds: 0 },
    global_step: 0,
    scheduler: freshSchedule(s.optim, s.optim.epochs * sampler.batchesPerEpoch),
    adam: adam.getState(),
    sampler: sampler.getState(),
    history: { train_losses: [], val_losses: [], epoch_seconds: [], lrs: [], epoch_ends: [], sessions: [] },
    best: { val_loss: null, epoch: null },
    early_stopping: { bad_epochs: 0 },
    config: s,
    gino_config: model.config,
    normalization: ds.normalization,
    data_fingerprint: ds.fingerprint,
    run_name: runName,
    saved_at: "",
  };
}

/** The state of a resumed checkpoint, its tensors restored into the model and optimiser. */
function resumedState(
  s: TrainSettings,
  ckpt: Checkpoint,
  o: {
    model: Gino;
    adam: Adam;
    sampler: PatchBatchSampler;
    imported: boolean;
    learningRateGiven: boolean;
    forceResume: boolean;
    runName: string;
    log: RunLog;
  },
): TrainingState {
  restoreTensors(ckpt, o.model, o.adam);
  const state = structuredClone(ckpt.state);
  state.format = CHECKPOINT_FORMAT;
  if (o.imported) {
    // imported weights: the first run adopts the data
    state.sampler = o.sampler.getState();
    state.run_name = o.runName;
  }
  try {
    o.sampler.setState(state.sampler);
  } catch (e) {
    if (!o.forceResume) throw new CheckpointError(withPath(ckpt.path, e));
    o.log.warn(`warning: ${(e as Error).message}; the current epoch restarts with a new batch plan`);
    state.step_in_epoch = 0;
    state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
  }
  const changes = resumeSchedule(
    state.scheduler,
    s.optim,
    o.learningRateGiven,
    s.optim.epochs * o.sampler.batchesPerEpoch,
  );
  if (changes.length) o.log.info(`learning-rate schedule: ${changes.join(", ")}`);
  return state;
}

/** Geometry of every patch (fixed for a patch: computed once), with a log line each. */
function patchGeometries(s: TrainSettings, ds: PatchDataset, model: Gino, log: RunLog): GinoGeometry[] {
  const grid = s.model.latentGrid;
  const sparse: string[] = [], empty: string[] = [];
  const out = ds.patches.map((p) => {
    const g = model.geometry(p.coords, latentGrid(p.coords, grid), grid);
    const pct = (v: number) => `${(100 * v).toFixed(0)}%`;
    if (g.stats.out.emptyShare > 0.1) sparse.push(`${p.name} ${pct(g.stats.out.emptyShare)}`);
    if (g.stats.in.emptyShare > 0.9) empty.push(`${p.name} ${pct(g.stats.in.emptyShare)}`);
    log.info(
      `  ${p.name}: ${p.n} points (${p.nCore} core), edges ${g.stats.in.edges}; latent nodes without points ` +
        `${(100 * g.stats.in.emptyShare).toFixed(0)}%, points without latent nodes ` +
        `${(100 * g.stats.out.emptyShare).toFixed(0)}% (mean ${g.stats.out.mean.toFixed(1)} per point)`,
    );
    return g;
  });
  const few = (l: string[]) => l.slice(0, 4).join(", ") + (l.length > 4 ? `, ... (${l.length} patches)` : "");
  if (sparse.length) {
    log.warn(
      `warning: many points have no latent node within --gno-radius ${s.model.gnoRadius} (their output is a ` +
        `constant): ${few(sparse)} of the points; consider a larger radius or a finer --latent-grid`,
    );
  }
  if (empty.length) {
    log.warn(
      `warning: most latent nodes have no point within --gno-radius ${s.model.gnoRadius} (the FNO sees mostly ` +
        `zeros there): ${
          few(empty)
        } of the latent nodes; consider a larger radius or a coarser --latent-grid`,
    );
  }
  return out;
}
