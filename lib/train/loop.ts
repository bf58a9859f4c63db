/**
 * The training loop: settings and resume -> data -> model, optimiser, samplers -> run folder -> epochs (train,
 * validate, record, checkpoint, decide to stop) -> finish. Every setting and the data are checked before anything
 * is written; a run folder appears only once they are known to be good.
 *
 * Exit statuses of {@linkcode train} (and so of `deno task train`):
 * - 0: done (target epochs reached, early stopping, or nothing left to do)
 * - 2: bad flags, data or checkpoint (the message says what and how to fix it)
 * - 3: stopped before the end by SIGTERM/SIGINT or `--time-limit`, after writing a resumable checkpoint
 * - 4: stopped because the loss became NaN or infinite; the last good checkpoint is kept
 * - 130: a second SIGINT: exited at once, checkpoints untouched
 *
 * @module
 */

import { initBackend, tf } from "../model/backend.ts";
import type { BackendName } from "../model/backend.ts";
import { DataError, loadPatchDataset } from "../data/dataset.ts";
import type { PatchDataset } from "../data/dataset.ts";
import { PatchBatchSampler } from "../data/sampler.ts";
import { BatchAssembler } from "../data/batch.ts";
import type { Batch } from "../data/batch.ts";
import { createGino, relativeL2Loss } from "../model/gino.ts";
import type { Gino, GinoGeometry } from "../model/gino.ts";
import { Adam } from "./adam.ts";
import { autoMicroBatch, latentGrid, predictWindow, trainStep } from "./step.ts";
import type { ResidualSpec } from "./step.ts";
import {
  CHECKPOINT_FORMAT,
  CHECKPOINT_FORMATS,
  CheckpointError,
  IMPORTED,
  loadCheckpoint,
  restoreTensors,
  saveCheckpoint,
} from "./checkpoint.ts";
import type { Checkpoint, SessionRecord, TrainingState } from "./checkpoint.ts";
import { defaultRunName, findLatestCheckpoint, runFolderOf, runLayout, RunLog } from "./runs.ts";
import type { RunLayout } from "./runs.ts";
import { RunLock } from "./runlock.ts";
import type { RunLockInfo } from "./runlock.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { DEMO_DIR, ensureDemoData } from "../data/demo.ts";
import { ginoConfigFor, gridOf, parseDuration, validateTrainSettings } from "./settings.ts";
import { checkpointNames, earlyStopped, isFinished } from "./policy.ts";
import type { PolicySettings } from "./policy.ts";
import { epochLogLine, epochRecord, recordEpoch, writeHistory, writeHistoryJsonSync } from "./history.ts";
import { reconcileRun } from "./reconcile.ts";
import { EXIT, withPath } from "../errors.ts";

export { EXIT, ginoConfigFor };

/** Settings that shape the model: a resume may not change them. */
const MODEL_KEYS = [
  "gno-radius",
  "latent-grid",
  "fno-modes",
  "fno-hidden-channels",
  "fno-layers",
  "lifting-channels",
  "gno-mlp-layers",
  "projection-channel-ratio",
  "residual",
  "input-window-size",
  "output-window-size",
  "target-cols",
];
/** Settings that choose or cut the data: a resume may change them only with --force-resume. */
const DATA_KEYS = [
  "base-data-dir",
  "patch-data-subdir",
  "val-ratio",
  "window-stride",
  "batch-size",
  "shuffle-within-batches",
  "shuffle-patches",
  "seed",
  "nan-policy",
];
/** Settings of one invocation only: not saved with the run. */
const NOT_SAVED = ["resume-from", "force-resume", "dry-run", "json", "help", "config", "_", "__explicit"];

/** Model size for the built-in demo data when no model flag is given (so the default run takes minutes). */
export const DEMO_MODEL: Record<string, unknown> = {
  "gno-radius": 0.25,
  "latent-grid": [12],
  "fno-modes": [8],
  "fno-hidden-channels": 32,
  "fno-layers": 4,
  "lifting-channels": 32,
  "gno-mlp-layers": [32, 64, 32],
  "projection-channel-ratio": 2,
  "residual": true,
};

const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
/** A setting in comparable form (`8` and `8,8,8` are the same mode or grid setting). */
function canonical(key: string, v: unknown): unknown {
  if ((key === "fno-modes" || key === "latent-grid") && Array.isArray(v) && v.length === 1) {
    return [v[0], v[0], v[0]];
  }
  return v;
}
const fmtLoss = (v: number) => (Number.isFinite(v) ? v.toFixed(6) : String(v));
function fmtTime(sec: number): string {
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = Math.floor(sec % 60);
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

/** Options of {@linkcode train} beyond the settings. */
export interface TrainHooks {
  /** Log to `train.log` only (errors and warnings still go to stderr). */
  quiet?: boolean;
}

/** The checkpoint a run would resume from, and the settings it would run with. */
export interface ResumePlan {
  /** The checkpoint (undefined: a new run). */
  checkpoint?: Checkpoint;
  /** Settings: the checkpoint's, with the explicitly given compatible flags on top. */
  settings: Record<string, unknown>;
}

/**
 * Finds the checkpoint to resume (`--resume-from auto|PATH`) and merges settings: the saved ones are the base,
 * explicit flags override them; flags that change the model or windows are refused, data flags need
 * `--force-resume`. Reads only.
 */
export async function planResume(
  settings: Record<string, unknown>,
  explicit: string[],
  log: { info(m: string): void; warn(m: string): void },
): Promise<ResumePlan> {
  let ckpt: Checkpoint | undefined;
  const resumeFrom = settings["resume-from"] as string | undefined;
  if (resumeFrom === "auto") {
    const found = await findLatestCheckpoint(settings["results-dir"] as string, (m) => log.warn(m));
    if (found) ckpt = await loadCheckpoint(found.path);
    else log.info(`no checkpoint found in ${settings["results-dir"]}: starting a new run`);
  } else if (resumeFrom) {
    ckpt = await loadCheckpoint(resumeFrom);
  }
  if (!ckpt) return { settings: { ...settings } };
  if (!(CHECKPOINT_FORMATS as readonly string[]).includes(ckpt.state.format)) {
    throw new CheckpointError(`${ckpt.path}: unknown checkpoint format ${ckpt.state.format}`);
  }
  const saved = ckpt.state.config;
  const refused: string[] = [], dataDiff: string[] = [];
  for (const key of explicit) {
    if (!(key in saved) || same(canonical(key, saved[key]), canonical(key, settings[key]))) continue;
    const line = `--${key}: saved ${JSON.stringify(saved[key])}, now ${JSON.stringify(settings[key])}`;
    if (MODEL_KEYS.includes(key)) refused.push(line);
    else if (DATA_KEYS.includes(key)) dataDiff.push(line);
  }
  if (refused.length) {
    throw new CheckpointError(
      `cannot resume ${ckpt.path} with a different model or windows:\n  ${refused.join("\n  ")}\n` +
        `start a new run instead (without --resume-from), or drop these flags to keep the saved values`,
    );
  }
  if (dataDiff.length && !settings["force-resume"]) {
    throw new CheckpointError(
      `cannot resume ${ckpt.path}: the data settings differ:\n  ${dataDiff.join("\n  ")}\n` +
        `drop these flags, or pass --force-resume to continue on other data`,
    );
  }
  // saved settings, then the explicit flags on top (run-control flags such as --epochs, --time-limit)
  const s: Record<string, unknown> = { ...saved };
  for (const key of explicit) s[key] = settings[key];
  for (const key of ["resume-from", "force-resume", "results-dir", "backend"]) {
    if (key in settings) s[key] = settings[key];
  }
  return { checkpoint: ckpt, settings: s };
}

/** The training data of a run, checked against the checkpoint it resumes. */
async function loadTrainingData(
  s: Record<string, unknown>,
  ckpt: Checkpoint | undefined,
  explicit: string[],
  log: RunLog,
): Promise<PatchDataset> {
  if (!s["base-data-dir"]) {
    s["base-data-dir"] = await ensureDemoData(DEMO_DIR, (m) => log.info(m));
    if (!ckpt) applyDemoModel(s, explicit, log);
  }
  const dataDir = `${s["base-data-dir"]}/${s["patch-data-subdir"]}`;
  const ds = await loadPatchDataset(dataDir, {
    targetCols: s["target-cols"] as string[],
    inputWindow: s["input-window-size"] as number,
    outputWindow: s["output-window-size"] as number,
    stride: s["window-stride"] as number,
    valRatio: s["val-ratio"] as number,
    nanPolicy: s["nan-policy"] as "fail" | "drop",
    normalization: ckpt?.state.normalization ?? undefined,
  });
  const span = `${s["input-window-size"]} + ${s["output-window-size"]} steps`;
  if (ds.windowCounts("train").every((c) => c === 0)) {
    throw new DataError(
      `no training windows in ${dataDir}: every patch's training part is shorter than ${span}; use smaller ` +
        `windows (--input-window-size, --output-window-size) or a smaller --val-ratio`,
    );
  }
  if (ds.windowCounts("val").every((c) => c === 0)) {
    throw new DataError(
      `no validation windows in ${dataDir}: every patch's validation part (--val-ratio ${
        s["val-ratio"]
      }) is ` +
        `shorter than ${span}; raise --val-ratio or use smaller windows`,
    );
  }
  if (ckpt?.state.data_fingerprint === IMPORTED) {
    log.info(
      `starting from imported weights ${ckpt.path}: normalisation statistics computed from ${dataDir}`,
    );
    ckpt.state.normalization = ds.normalization;
    ckpt.state.data_fingerprint = ds.fingerprint;
  }
  if (ckpt && ckpt.state.data_fingerprint !== ds.fingerprint) {
    const msg =
      `the data differ from the checkpoint's (data fingerprint: saved ${ckpt.state.data_fingerprint}, ` +
      `now ${ds.fingerprint}; ${dataDir})`;
    if (!s["force-resume"]) {
      throw new CheckpointError(
        `cannot resume ${ckpt.path}: ${msg}; pass --force-resume to continue on these data`,
      );
    }
    log.warn(`warning: ${msg}; continuing because of --force-resume (the saved normalisation is used)`);
  }
  return ds;
}

/** The demo data's smaller model, for every model flag not given. */
function applyDemoModel(s: Record<string, unknown>, explicit: string[], log: RunLog): void {
  const chosen: string[] = [];
  for (const [k, v] of Object.entries(DEMO_MODEL)) {
    if (explicit.includes(k)) continue;
    s[k] = v;
    chosen.push(`--${k} ${Array.isArray(v) ? v.join(",") : v}`);
  }
  if (chosen.length === 0) return;
  validateTrainSettings(s);
  log.info(
    `built-in demo data: model defaults ${
      chosen.join(" ")
    } (a smaller model, radius ~2x the node spacing in ` +
      `standardised units, so that the default 5-epoch run finishes in a few minutes on two cores; and ` +
      `residual prediction, the change from the last input step, which the plain reference output needs ` +
      `far more epochs to match; pass model flags to override)`,
  );
}

/** What a training session works with. */
interface Session {
  s: Record<string, unknown>;
  log: RunLog;
  ds: PatchDataset;
  model: Gino;
  adam: Adam;
  sampler: PatchBatchSampler;
  valSampler: PatchBatchSampler;
  assembler: BatchAssembler;
  geometries: GinoGeometry[];
  micro: number;
  residual?: ResidualSpec;
  state: TrainingState;
  /** This session's record (in `state.history.sessions` once it trains). */
  record: SessionRecord;
  /** The run's global step when this session started (it trained nothing while they are equal). */
  startStep: number;
  layout: RunLayout;
  /** The run, held by this session. */
  lock: RunLock;
  policy: PolicySettings;
  stop: StopControl;
}

/** The new training state of a run that starts from scratch. */
function freshState(
  s: Record<string, unknown>,
  model: Gino,
  adam: Adam,
  sampler: PatchBatchSampler,
  ds: PatchDataset,
  startedAt: Date,
): TrainingState {
  return {
    format: CHECKPOINT_FORMAT,
    epoch: 0,
    step_in_epoch: 0,
    partial_epoch: { loss_sum: 0, samples: 0, seconds: 0 },
    global_step: 0,
    scheduler: {
      lr: s["learning-rate"] as number,
      base_lr: s["learning-rate"] as number,
      gamma: s["lr-gamma"] as number,
      interval: s["lr-scheduler-interval"] as number,
    },
    adam: adam.getState(),
    sampler: sampler.getState(),
    history: { train_losses: [], val_losses: [], epoch_seconds: [], lrs: [], epoch_ends: [], sessions: [] },
    best: { val_loss: null, epoch: null },
    early_stopping: { bad_epochs: 0 },
    config: {},
    gino_config: model.config,
    normalization: ds.normalization,
    data_fingerprint: ds.fingerprint,
    run_name: (s["run-name"] as string | undefined) ?? defaultRunName(startedAt),
    saved_at: "",
  };
}

/** The state to continue from: the checkpoint's (tensors restored into model and optimiser), or a fresh one. */
function startingState(
  s: Record<string, unknown>,
  ckpt: Checkpoint | undefined,
  parts: { model: Gino; adam: Adam; sampler: PatchBatchSampler; ds: PatchDataset; imported: boolean },
  startedAt: Date,
  log: RunLog,
): TrainingState {
  const { model, adam, sampler, ds } = parts;
  if (!ckpt) return freshState(s, model, adam, sampler, ds, startedAt);
  restoreTensors(ckpt, model, adam);
  const state = structuredClone(ckpt.state);
  state.format = CHECKPOINT_FORMAT;
  if (parts.imported) {
    // imported weights: the first run adopts the data
    state.sampler = sampler.getState();
    state.run_name = (s["run-name"] as string | undefined) ?? defaultRunName(startedAt);
  }
  try {
    sampler.setState(state.sampler);
  } catch (e) {
    if (!s["force-resume"]) throw new CheckpointError(withPath(ckpt.path, e));
    log.warn(`warning: ${(e as Error).message}; the current epoch restarts with a new batch plan`);
    state.step_in_epoch = 0;
    state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
  }
  return state;
}

/** Geometry of every patch (fixed for a patch: computed once), with a log line each. */
function patchGeometries(
  s: Record<string, unknown>,
  ds: PatchDataset,
  model: Gino,
  log: RunLog,
): GinoGeometry[] {
  const grid = gridOf(s);
  let sparse = 0;
  const out = ds.patches.map((p) => {
    const g = model.geometry(p.coords, latentGrid(p.coords, grid), grid);
    if (g.stats.out.emptyShare > 0.1 || g.stats.in.emptyShare > 0.9) sparse++;
    log.info(
      `  ${p.name}: ${p.n} points (${p.nCore} core), edges ${g.stats.in.edges}; latent nodes without points ` +
        `${(100 * g.stats.in.emptyShare).toFixed(0)}%, points without latent nodes ` +
        `${(100 * g.stats.out.emptyShare).toFixed(0)}% (mean ${g.stats.out.mean.toFixed(1)} per point)`,
    );
    return g;
  });
  if (sparse) {
    log.warn(
      `warning: in ${sparse} patch(es) many points have no latent node within --gno-radius ${
        s["gno-radius"]
      } ` +
        `(their output is a constant); consider a larger radius or a finer --latent-grid`,
    );
  }
  return out;
}

/** Signals and the time limit: when to stop. */
class StopControl {
  reason?: string;
  #sigints = 0;
  #handlers: [Deno.Signal, () => void][] = [];
  #deadline: number;
  /** Measured times (ms) of a step, a validation pass and one checkpoint write. */
  stepMs = 0;
  valMs = 0;
  ckptMs = 2000;

  constructor(
    timeLimit: string | undefined,
    t0: number,
    private onHardExit: () => void,
    private log: RunLog,
  ) {
    this.#deadline = timeLimit ? t0 + parseDuration(timeLimit)! * 1000 : Infinity;
  }

  /** True when work of `ms` still leaves time for a checkpoint before the deadline. */
  fits(ms: number): boolean {
    return performance.now() + ms + this.ckptMs * 1.5 < this.#deadline;
  }

  /** Notes a finished step's duration; asks to stop when the next one would not fit. */
  afterStep(ms: number): void {
    this.stepMs = this.stepMs === 0 ? ms : Math.max(ms, 0.8 * this.stepMs + 0.2 * ms);
    if (!this.reason && !this.fits(this.stepMs * 1.5)) this.reason = "time limit";
  }

  install(): void {
    for (const sig of ["SIGTERM", "SIGINT"] as const) {
      const h = () => this.#onSignal(sig);
      try {
        Deno.addSignalListener(sig, h);
        this.#handlers.push([sig, h]);
      } catch {
        // signal not supported on this platform
      }
    }
  }

  uninstall(): void {
    for (const [sig, h] of this.#handlers) Deno.removeSignalListener(sig, h);
    this.#handlers = [];
  }

  #onSignal(sig: string): void {
    if (sig === "SIGINT" && ++this.#sigints >= 2) {
      this.log.warn(
        "second interrupt: exiting now without writing a checkpoint (existing checkpoints are untouched)",
      );
      this.onHardExit();
      Deno.exit(EXIT.interrupted);
    }
    if (!this.reason) {
      this.reason = sig;
      this.log.warn(`${sig} received: finishing the current step, then writing a resumable checkpoint`);
    }
  }
}

/** Writes the checkpoint files the policy names for the current state; returns their paths. */
async function saveState(ses: Session): Promise<string[]> {
  const tw = performance.now();
  const { state } = ses;
  state.adam = ses.adam.getState();
  state.sampler = ses.sampler.getState();
  state.saved_at = new Date().toISOString();
  const written: string[] = [];
  for (const name of checkpointNames(state, ses.policy)) {
    await saveCheckpoint(`${ses.layout.checkpointDir}/${name}`, ses.model, ses.adam, state);
    written.push(`${ses.layout.checkpointDir}/${name}`);
  }
  ses.stop.ckptMs = Math.max(500, (performance.now() - tw) / written.length);
  return written;
}

const tensorsOf = (b: Batch) => {
  const cin = b.inputs.length / (b.b * b.n), cout = b.targets.length / (b.b * b.n);
  return [tf.tensor3d(b.inputs, [b.b, b.n, cin]), tf.tensor3d(b.targets, [b.b, b.n, cout])] as const;
};

/**
 * Trains the rest of the current epoch. Returns undefined when the epoch's batches are done, or why it stopped
 * early: `stop` (signal or time limit) or a non-finite loss.
 */
async function trainEpoch(ses: Session): Promise<"stop" | { diverged: number } | undefined> {
  const { state, sampler, stop } = ses;
  const epochStart = performance.now() - state.partial_epoch.seconds * 1000;
  const progress = Deno.stdout.isTerminal() && !ses.log.quiet;
  const enc = new TextEncoder();
  const signalAfter = testSignalStep();
  for (let sb = sampler.next(); sb; sb = sampler.next()) {
    const ts = performance.now();
    const batch = ses.assembler.assemble("train", sb);
    const [x, y] = tensorsOf(batch);
    const loss = trainStep(ses.model, ses.geometries[sb.patch], x, y, batch.nCore, ses.micro, ses.adam, {
      clipNorm: ses.s["grad-clip-norm"] as number | undefined,
      lossEps: ses.s["loss-eps"] as number,
      residual: ses.residual,
    });
    tf.dispose([x, y]);
    if (!Number.isFinite(loss)) return { diverged: loss };
    state.partial_epoch.loss_sum += loss * batch.b;
    state.partial_epoch.samples += batch.b;
    state.step_in_epoch++;
    state.global_step++;
    state.partial_epoch.seconds = (performance.now() - epochStart) / 1000;
    stop.afterStep(performance.now() - ts);
    if (progress) {
      const done = state.step_in_epoch, total = sampler.batchesPerEpoch;
      const bar = "=".repeat(Math.round((20 * done) / total)).padEnd(20);
      Deno.stdout.writeSync(enc.encode(
        `\r epoch ${state.epoch + 1}/${ses.policy.epochs} [${bar}] ${done}/${total} loss ${
          fmtLoss(state.partial_epoch.loss_sum / state.partial_epoch.samples)
        } ETA ${fmtTime(((total - done) * stop.stepMs) / 1000)} `,
      ));
    }
    if (signalAfter?.step === state.global_step) Deno.kill(Deno.pid, signalAfter.signal);
    // let a pending signal's handler run before the next step starts (the step itself is synchronous)
    await new Promise((r) => setTimeout(r, signalAfter !== undefined ? 20 : 0));
    if (stop.reason) break;
  }
  if (progress) Deno.stdout.writeSync(enc.encode("\r\x1b[K"));
  return sampler.position < sampler.batchesPerEpoch ? "stop" : undefined;
}

/**
 * Test hooks that exercise the real signal paths: GINO_GW_TEST_SIGTERM_AFTER_STEP (or ..._SIGKILL_...) sends this
 * process SIGTERM (SIGKILL) after that global step.
 */
function testSignalStep(): { step: number; signal: Deno.Signal } | undefined {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    const hook = Deno.env.get(`GINO_GW_TEST_${signal}_AFTER_STEP`);
    if (hook) return { step: Number(hook), signal };
  }
  return undefined;
}

/** Validation over all validation windows; loss = mean over samples (as training), plus per target column. */
function evaluate(ses: Session): { loss: number; perColumn: Record<string, number> } {
  const { model, valSampler: sampler, assembler, micro, residual } = ses;
  const cols = ses.s["target-cols"] as string[];
  const tout = ses.s["output-window-size"] as number;
  const lossFn = (p: tf.Tensor3D, y: tf.Tensor3D, n: number) =>
    relativeL2Loss(p, y, n, ses.s["loss-eps"] as number);
  sampler.beginEpoch();
  let sum = 0, n = 0;
  const perCol = new Array(cols.length).fill(0);
  for (let sb = sampler.next(); sb; sb = sampler.next()) {
    const batch = assembler.assemble("val", sb);
    const [x, y] = tensorsOf(batch);
    for (let s0 = 0; s0 < batch.b; s0 += micro) {
      const m = Math.min(micro, batch.b - s0);
      const vals = tf.tidy(() => {
        const xs = x.slice([s0, 0, 0], [m, -1, -1]), ys = y.slice([s0, 0, 0], [m, -1, -1]);
        const pred = predictWindow(model, ses.geometries[sb.patch], xs, residual);
        const out = [lossFn(pred, ys, batch.nCore)];
        if (cols.length > 1) {
          cols.forEach((_, c) =>
            out.push(lossFn(
              pred.slice([0, 0, c * tout], [-1, -1, tout]),
              ys.slice([0, 0, c * tout], [-1, -1, tout]),
              batch.nCore,
            ))
          );
        }
        return out.map((t) => t.dataSync()[0]);
      });
      sum += vals[0] * m;
      for (let c = 0; c < cols.length; c++) perCol[c] += (cols.length > 1 ? vals[c + 1] : vals[0]) * m;
      n += m;
    }
    tf.dispose([x, y]);
  }
  const perColumn: Record<string, number> = {};
  cols.forEach((c, i) => (perColumn[c] = n ? perCol[i] / n : NaN));
  return { loss: n ? sum / n : NaN, perColumn };
}

/** Closes an epoch: records it, steps the schedule, saves what the policy says, writes its log and metrics lines. */
async function endEpoch(
  ses: Session,
  val: { loss: number; perColumn: Record<string, number> },
  seconds: number,
): Promise<void> {
  const { state, adam } = ses;
  const epoch = state.epoch + 1;
  const trainLoss = state.partial_epoch.loss_sum / state.partial_epoch.samples;
  recordEpoch(state, { train: trainLoss, val: val.loss, perColumn: val.perColumn, lr: adam.lr, seconds });
  state.epoch = epoch;
  ses.record.last_epoch = epoch;
  if (state.best.val_loss === null || val.loss < state.best.val_loss) {
    state.best = { val_loss: val.loss, epoch };
    state.early_stopping.bad_epochs = 0;
  } else state.early_stopping.bad_epochs++;
  if (epoch % state.scheduler.interval === 0) {
    state.scheduler.lr *= state.scheduler.gamma;
    adam.lr = state.scheduler.lr;
  }
  state.step_in_epoch = 0;
  state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
  if (isFinished(state, ses.policy)) closeRecord(ses, EXIT.done, completionText(ses));
  await saveState(ses);
  const rec = epochRecord(state, epoch, ses.sampler.totalWindows, ses.policy);
  ses.log.info(epochLogLine(rec, ses.policy.epochs));
  await Deno.writeTextFile(ses.layout.metrics, JSON.stringify(rec) + "\n", { append: true });
  await writeHistory(ses.layout, state);
  await ses.lock.heartbeat();
}

function completionText(ses: Session): string {
  return earlyStopped(ses.state, ses.policy)
    ? `early stopping: no better validation loss for ${ses.policy.patience} epochs`
    : "completed";
}

/** Sets the session's end and exit (before its last checkpoint is written, so the checkpoint holds them). */
function closeRecord(ses: Session, status: number, text: string): void {
  ses.record.end = new Date().toISOString();
  ses.record.exit = text;
  ses.record.exit_status = status;
}

/** The epochs of a session; returns the exit status. */
async function runEpochs(ses: Session): Promise<number> {
  const { state, sampler, stop, log } = ses;
  while (state.epoch < ses.policy.epochs && !earlyStopped(state, ses.policy)) {
    const epoch = state.epoch + 1;
    if (sampler.epoch === state.epoch) {
      // a fresh epoch (not one interrupted half-way); mid-epoch stops are resumable, so one step must fit
      if (!stop.reason && !stop.fits(stop.stepMs * 1.5)) stop.reason = "time limit";
      if (stop.reason) break;
      sampler.beginEpoch();
      state.step_in_epoch = 0;
      state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
    }
    ses.record.first_epoch ??= epoch;
    const epochStart = performance.now() - state.partial_epoch.seconds * 1000;
    const r = await trainEpoch(ses);
    if (r && r !== "stop") {
      return diverged(
        ses,
        `the training loss became ${r.diverged} at epoch ${epoch}, batch ${state.step_in_epoch + 1}`,
      );
    }
    if (r === "stop" || (stop.reason && !stop.fits(stop.valMs * 1.2))) break;
    const tv = performance.now();
    const val = evaluate(ses);
    stop.valMs = performance.now() - tv;
    if (!Number.isFinite(val.loss)) {
      return diverged(ses, `the validation loss became ${val.loss} at epoch ${epoch}`);
    }
    await endEpoch(ses, val, (performance.now() - epochStart) / 1000);
  }
  if (state.epoch >= ses.policy.epochs || earlyStopped(state, ses.policy)) {
    if (earlyStopped(state, ses.policy)) log.info(completionText(ses));
    return EXIT.done;
  }
  const text = `stopped by ${stop.reason} at epoch ${state.epoch}${
    state.step_in_epoch ? ` + ${state.step_in_epoch} batches` : ""
  }`;
  closeRecord(ses, EXIT.stopped, text);
  const rd = ses.s["results-dir"] as string;
  const hint = `continue with deno task train --resume-from auto` +
    (rd !== "results" ? ` --results-dir ${rd}` : "");
  if (state.global_step === ses.startStep) {
    dropRecord(ses); // nothing trained: the checkpoint already holds this state
    log.info(`${text} before training a step; nothing new to save; ${hint}`);
    return EXIT.stopped;
  }
  const written = await saveState(ses);
  await writeHistory(ses.layout, state);
  log.info(`${text}; resumable checkpoint ${written.join(", ")}; ${hint}`);
  return EXIT.stopped;
}

function diverged(ses: Session, what: string): number {
  closeRecord(ses, EXIT.diverged, what.replace(/^the (training|validation) /, ""));
  ses.log.warn(
    `error: ${what}; stopped without saving. The last good checkpoint is ${ses.layout.checkpointDir}/` +
      `latest_checkpoint.safetensors (if one was written). Lower --learning-rate, set --grad-clip-norm, or set ` +
      `--loss-eps (near-zero targets make the relative loss blow up).`,
  );
  return EXIT.diverged;
}

/**
 * Where a session's run lives: the folder of the resumed run (its checkpoints where they are), or
 * `<results-dir>/<run-name>` for a new one.
 */
function layoutFor(
  s: Record<string, unknown>,
  explicit: string[],
  resumed: Checkpoint | undefined,
  runName: string,
): RunLayout {
  const custom = s["checkpoint-dir"] as string | undefined;
  if (!resumed) return runLayout(`${s["results-dir"]}/${runName}`, custom);
  const inside = runFolderOf(resumed.path);
  if (inside) return runLayout(inside, explicit.includes("checkpoint-dir") ? custom : undefined);
  // a checkpoint kept elsewhere (--checkpoint-dir): the run folder is in the results folder
  const dir = `${s["results-dir"]}/${runName}`;
  if (explicit.includes("checkpoint-dir")) return runLayout(dir, custom);
  return runLayout(dir, resumed.path.slice(0, resumed.path.lastIndexOf("/")) || ".");
}

/** The settings saved with the run (every setting but those of one invocation). */
function savedSettings(s: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(Object.entries(s).filter(([k]) => !NOT_SAVED.includes(k)));
}

/**
 * Runs (or resumes) training with the given settings (parsed flags, kebab-case keys; `explicit` lists the flags
 * given on the command line). Returns the exit status.
 */
export async function train(
  settings: Record<string, unknown>,
  explicit: string[],
  hooks: TrainHooks = {},
): Promise<number> {
  const log = new RunLog(undefined, hooks.quiet);
  const startedAt = new Date();
  const t0 = performance.now();

  // ---- check everything before anything is written ----
  validateTrainSettings(settings);
  const { checkpoint: ckpt, settings: s } = await planResume(settings, explicit, log);
  validateTrainSettings(s);
  const imported = ckpt?.state.data_fingerprint === IMPORTED;
  const ds = await loadTrainingData(s, ckpt, explicit, log);
  const backend = await initBackend(s["backend"] as BackendName, (m) => log.info(m));
  const model = createGino(ginoConfigFor(s), s["seed"] as number);
  const adam = new Adam(model.variables, s["learning-rate"] as number);
  const batchSize = s["batch-size"] as number;
  const sampler = new PatchBatchSampler(ds.windowCounts("train"), {
    batchSize,
    shuffleWithinBatches: s["shuffle-within-batches"] as boolean,
    shufflePatches: s["shuffle-patches"] as boolean,
    seed: (s["seed"] as number) + 1,
  });
  const valSampler = new PatchBatchSampler(ds.windowCounts("val"), {
    batchSize,
    shuffleWithinBatches: false,
    shufflePatches: false,
  });
  const state = startingState(s, ckpt, { model, adam, sampler, ds, imported }, startedAt, log);
  adam.lr = state.scheduler.lr;
  state.config = savedSettings(s);
  const geometries = patchGeometries(s, ds, model, log);
  const micro = (s["micro-batch"] as number | undefined) ??
    autoMicroBatch(
      ds.patches.map((p, i) => ({
        n: p.n,
        edges: geometries[i].stats.in.edges + geometries[i].stats.out.edges,
      })),
      gridOf(s),
      model.config.fno_hidden_channels,
      batchSize,
    );
  const free = () => {
    for (const g of geometries) g.dispose();
    adam.dispose();
    model.dispose();
  };

  // ---- the run folder ----
  const layout = layoutFor(s, explicit, imported ? undefined : ckpt, state.run_name);
  await Deno.mkdir(layout.dir, { recursive: true });
  await Deno.mkdir(layout.checkpointDir, { recursive: true });
  const { lock, previous: staleLock } = await RunLock.acquire(
    layout,
    startedAt.toISOString(),
    (m) => log.warn(m),
  );
  log.attach(layout.log);
  const record: SessionRecord = {
    start: startedAt.toISOString(),
    end: null,
    first_epoch: null,
    last_epoch: null,
    resumed_from: ckpt?.path ?? null,
    host: Deno.hostname(),
    backend: backend.backend + (backend.kernels?.blas ? ` + ${backend.kernels.blas}` : ""),
    exit: null,
    exit_status: null,
  };
  const stop = new StopControl(s["time-limit"] as string | undefined, t0, () => {
    closeRecord(ses, EXIT.interrupted, "second interrupt: exited at once");
    if (state.global_step === ses.startStep) dropRecord(ses);
    writeHistoryJsonSync(layout, state);
    lock.release();
  }, log);
  const policy: PolicySettings = {
    every: s["save-checkpoint-every"] as number,
    epochs: s["epochs"] as number,
    patience: s["early-stopping-patience"] as number | undefined,
  };
  const ses: Session = {
    s,
    log,
    ds,
    model,
    adam,
    sampler,
    valSampler,
    assembler: new BatchAssembler(ds, batchSize),
    geometries,
    micro,
    residual: s["residual"]
      ? {
        cols: (s["target-cols"] as string[]).length,
        tin: s["input-window-size"] as number,
        tout: s["output-window-size"] as number,
      }
      : undefined,
    state,
    record,
    layout,
    lock,
    policy,
    stop,
    startStep: state.global_step,
  };
  let exit: number = EXIT.done;
  let recorded = false;
  try {
    if (ckpt && !imported) await repair(ses, ckpt, staleLock);
    await writeTextFileAtomic(
      layout.config,
      JSON.stringify(
        {
          settings: state.config,
          checkpoint_dir: s["checkpoint-dir"] ? await absolute(layout.checkpointDir) : null,
          gino_config: model.config,
          normalization: ds.normalization,
          data_fingerprint: ds.fingerprint,
          data_dir: `${s["base-data-dir"]}/${s["patch-data-subdir"]}`,
        },
        null,
        1,
      ) + "\n",
    );
    if (isFinished(state, policy)) {
      await writeHistory(layout, state);
      log.info(
        `nothing to do: the run already has ${state.epoch} epochs` +
          (earlyStopped(state, policy) ? " (early stopping)" : "") +
          ` (--epochs ${policy.epochs}); raise --epochs to train further`,
      );
      return EXIT.done;
    }
    state.history.sessions.push(record);
    recorded = true;
    log.info(
      ckpt
        ? `resuming ${layout.dir} from ${ckpt.path} (epoch ${state.epoch}${
          state.step_in_epoch ? `, batch ${state.step_in_epoch}` : ""
        }) towards ${policy.epochs} epochs`
        : `new run ${layout.dir}: ${policy.epochs} epochs, ${
          model.parameterCount.toLocaleString("en")
        } parameters, ` +
          `${ds.patches.length} patches, ${sampler.totalWindows} training / ${valSampler.totalWindows} validation ` +
          `windows, batch ${batchSize}`,
    );
    if (micro < batchSize) {
      log.info(`micro-batches of ${micro} windows (gradients accumulated over each batch of ${batchSize})`);
    }
    stop.install();
    exit = await runEpochs(ses);
  } catch (e) {
    if (record.exit === null) closeRecord(ses, EXIT.internal, `failed: ${(e as Error).message}`);
    throw e;
  } finally {
    stop.uninstall();
    if (record.exit === null) closeRecord(ses, exit, "completed");
    if (recorded) {
      // a session that trained nothing is not recorded
      if (state.global_step === ses.startStep) dropRecord(ses);
      await writeHistory(layout, state).catch(() => {});
    }
    lock.release();
    free();
    if (exit === EXIT.done && recorded) {
      log.info(
        `done: ${state.epoch} epochs, best validation loss ${
          state.best.val_loss === null ? "-" : fmtLoss(state.best.val_loss)
        } (epoch ${state.best.epoch}); ${layout.dir} (${
          ((performance.now() - t0) / 1000).toFixed(0)
        } s this session)`,
      );
    }
    log.close();
  }
  return exit;
}

/** Takes this session's record out of the run's history (it trained nothing). */
function dropRecord(ses: Session): void {
  const i = ses.state.history.sessions.indexOf(ses.record);
  if (i >= 0) ses.state.history.sessions.splice(i, 1);
}

/** Repairs what earlier sessions left unwritten, and says so (see `reconcile.ts`). */
async function repair(ses: Session, ckpt: Checkpoint, staleLock: RunLockInfo | undefined) {
  const r = await reconcileRun({
    layout: ses.layout,
    checkpoint: ckpt,
    state: ses.state,
    staleLock,
    trainingWindows: ses.sampler.totalWindows,
    record: (line) => ses.log.record(line),
  });
  const { log } = ses;
  if (r.temporaries.length) {
    log.info(
      `removed ${r.temporaries.length} temporary file(s) of interrupted writes: ${r.temporaries.join(", ")}`,
    );
  }
  if (r.restored.length) {
    log.info(`completed the checkpoint writes a killed session left undone: ${r.restored.join(", ")}`);
  }
  for (const k of r.killed) {
    log.info(
      `the session started ${k.start} on ${k.host} ended without a clean exit (killed); last sign of life ${k.end}`,
    );
  }
  if (r.metricsRebuilt.length) {
    log.info(`rebuilt the metrics.jsonl line(s) of epoch(s) ${r.metricsRebuilt.join(", ")}`);
  }
  for (const w of r.warnings) log.warn(`warning: ${w}`);
}

async function absolute(path: string): Promise<string> {
  return path.startsWith("/") ? path : await Deno.realPath(path);
}
