/**
 * The checkpoint manager's operations (`deno task ckpt <command>`): latest, list, show, verify, clean, backup,
 * export to and import from PyTorch weights. Each returns plain data; `manage_checkpoints.ts` prints it.
 *
 * @module
 */

import { ToolError, withPath } from "../errors.ts";
import {
  CHECKPOINT_FORMAT,
  CheckpointError,
  encodeCheckpoint,
  IMPORTED,
  verifyCheckpointBytes,
} from "../train/checkpoint.ts";
import type { TrainingState } from "../train/checkpoint.ts";
import { findLatestCheckpoint, listCheckpoints, listRuns } from "../train/runs.ts";
import { BEST, FINAL, LATEST, readRunLayout } from "../train/layout.ts";
import { inspectRunLock } from "../train/runlock.ts";
import type { RunInfo } from "../train/runs.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import { diskFullOr, writePoint } from "../io/disk_full.ts";
import { createGino } from "../model/gino.ts";
import { resolveGinoConfig } from "../model/config.ts";
import { initBackend } from "../model/backend.ts";
import { ginoConfigFor, perAxisValues, settingsFromConfig, settingsFromSaved } from "../train/settings.ts";
import type { TrainSettings } from "../train/settings.ts";
import { freshSchedule } from "../train/schedule.ts";
import type { Gino } from "../model/gino.ts";

/** A problem the user must fix; the message names the file or run. */
export class ManagerError extends ToolError {
  constructor(message: string) {
    super(message);
    this.name = "ManagerError";
  }
}

/** Summary of a run. */
export interface RunSummary {
  /** The run name (its folder name). */
  run: string;
  /** The run folder. */
  dir: string;
  /** Epochs in the loss history. */
  epochs_done: number;
  /** The target `--epochs` of the last session (null when unknown). */
  epochs_target: number | null;
  /** Training loss of the last epoch. */
  last_train_loss: number | null;
  /** Validation loss of the last epoch. */
  last_val_loss: number | null;
  /** Best validation loss so far. */
  best_val_loss: number | null;
  /** Epoch of the best validation loss. */
  best_epoch: number | null;
  /** Sessions recorded. */
  sessions: number;
  /** When the history was last written (ISO time). */
  last_update: string | null;
  /** Bytes on disk. */
  size_bytes: number;
  /** Checkpoint files. */
  checkpoints: number;
  /**
   * What the run is doing: `running` (a live session holds it), `finished` (target reached or early stopping),
   * `stopped` (a signal or the time limit stopped it with a resumable checkpoint), `failed` (the loss diverged, an
   * error ended it, or it never completed an epoch), `crashed` (its last session was killed).
   */
  state: RunState;
  /** How the last session ended. */
  last_exit: string | null;
  /** The host of a running session. */
  host?: string;
  /** The chains of scheduler jobs that trained it (each chain's first job id), oldest first; empty when none. */
  chains: string[];
}

/** The states {@linkcode RunSummary.state} takes. */
export type RunState = "running" | "finished" | "stopped" | "failed" | "crashed";

interface History {
  train_losses: number[];
  val_losses: number[];
  best?: { val_loss: number | null; epoch: number | null };
  last_updated?: string;
  sessions: {
    exit: string | null;
    end: string | null;
    host: string;
    exit_status?: number | null;
    chain?: string | null;
  }[];
}

/** The state a run's last session left it in (see {@linkcode RunSummary.state}). */
function stateOfLastSession(
  last: History["sessions"][number] | undefined,
  done: number,
  target: number | null,
): RunState {
  if (!last || done === 0) return "failed"; // no epoch was ever completed
  if (last.end === null) return "crashed";
  const status = last.exit_status ?? (
    /loss became/.test(last.exit ?? "")
      ? 4
      : /^stopped by/.test(last.exit ?? "")
      ? 3
      : /^(completed|early stopping)/.test(last.exit ?? "")
      ? 0
      : null
  );
  if (status === 0) {
    return (target !== null && done >= target) || /^early stopping/.test(last.exit ?? "")
      ? "finished"
      : "stopped";
  }
  if (status === 3 || status === 130) return "stopped";
  if (status === null) return "crashed";
  return "failed";
}

async function readJson<T>(path: string): Promise<T | undefined> {
  try {
    return JSON.parse(await Deno.readTextFile(path)) as T;
  } catch {
    return undefined;
  }
}

async function dirSize(dir: string): Promise<number> {
  let total = 0;
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) total += await dirSize(p);
    else if (e.isFile) total += (await Deno.stat(p)).size;
  }
  return total;
}

/** Summarises one run folder. */
export async function summarizeRun(run: RunInfo): Promise<RunSummary> {
  const hist = await readJson<History>(`${run.dir}/loss_history.json`);
  const cfg = await readJson<{ settings?: Record<string, unknown> }>(`${run.dir}/config.json`);
  const found = await inspectRunLock(run.layout);
  const lock = found?.info;
  const target = cfg?.settings ? settingsFromSaved(cfg.settings).optim.epochs : null;
  const done = hist?.train_losses.length ?? 0;
  const last = hist?.sessions.at(-1);
  const holder = found?.holder;
  const state: RunState = holder === "alive" || holder === "unknown"
    ? "running"
    : holder === "dead"
    ? "crashed"
    : stateOfLastSession(last, done, target);
  return {
    run: run.name,
    dir: run.dir,
    epochs_done: done,
    epochs_target: target,
    last_train_loss: hist?.train_losses.at(-1) ?? null,
    last_val_loss: hist?.val_losses.at(-1) ?? null,
    best_val_loss: hist?.best?.val_loss ?? null,
    best_epoch: hist?.best?.epoch ?? null,
    sessions: hist?.sessions.length ?? 0,
    last_update: hist?.last_updated ?? (run.mtime ? new Date(run.mtime).toISOString() : null),
    size_bytes: await dirSize(run.dir) +
      (run.checkpointDir.startsWith(`${run.dir}/`) ? 0 : await dirSize(run.checkpointDir).catch(() => 0)),
    checkpoints: run.checkpoints.length,
    state,
    last_exit: state === "crashed" && holder === "dead"
      ? `killed: ${lock ? `process ${lock.pid} on ${lock.host}` : "its session"} is gone (last sign of life ${
        lock?.heartbeat ?? lock?.start ?? "unknown"
      })`
      : last?.exit ?? null,
    ...(state === "running" && lock ? { host: lock.host } : {}),
    chains: [...new Set((hist?.sessions ?? []).map((x) => x.chain).filter((c): c is string => !!c))],
  };
}

/** `list`: every run, newest first. */
export async function listCommand(resultsDir: string): Promise<RunSummary[]> {
  return await Promise.all((await listRuns(resultsDir)).map(summarizeRun));
}

/** What `latest` reports. */
export interface LatestInfo {
  /** Path of the checkpoint. */
  checkpoint: string;
  /** The run name (its folder name). */
  run: string;
  /** Epochs completed at the checkpoint. */
  epoch: number;
  /** Batches of the next epoch already trained (0 at an epoch boundary). */
  step_in_epoch: number;
  /** Training loss of the last epoch before the checkpoint. */
  train_loss: number | null;
  /** Validation loss of that epoch. */
  val_loss: number | null;
  /** Best validation loss so far. */
  best_val_loss: number | null;
  /** Epoch of the best validation loss. */
  best_epoch: number | null;
  /** Sessions recorded. */
  sessions: number;
  /** When it was written (ISO time). */
  saved_at: string;
  /** Bytes on disk. */
  size_bytes: number;
}

/** `latest`: the newest valid checkpoint of the newest run. */
export async function latestCommand(resultsDir: string, warn: (m: string) => void): Promise<LatestInfo> {
  const found = await findLatestCheckpoint(resultsDir, warn);
  if (!found) throw new ManagerError(`no valid checkpoint in ${resultsDir} (train first: deno task train)`);
  const s = found.state;
  return {
    checkpoint: found.path,
    run: found.run.name,
    epoch: s.epoch,
    step_in_epoch: s.step_in_epoch,
    train_loss: s.history.train_losses.at(-1) ?? null,
    val_loss: s.history.val_losses.at(-1) ?? null,
    best_val_loss: s.best.val_loss,
    best_epoch: s.best.epoch,
    sessions: s.history.sessions.length,
    saved_at: s.saved_at,
    size_bytes: (await Deno.stat(found.path)).size,
  };
}

/** Result of verifying one file. */
export interface VerifyReport {
  /** The file. */
  path: string;
  /** True when the file is intact. */
  ok: boolean;
  /** What is wrong, one sentence each. */
  problems: string[];
  /** Epochs completed at the checkpoint. */
  epoch?: number;
  /** SHA-256 recomputed from the file (hex). */
  sha256?: string;
}

/** Verifies one checkpoint file. */
export async function verifyFile(path: string): Promise<VerifyReport> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    return { path, ok: false, problems: [withPath(path, e)] };
  }
  const v = await verifyCheckpointBytes(bytes, path);
  return { path, ok: v.ok, problems: v.problems, epoch: v.state?.epoch, sha256: v.sha256 };
}

/** `verify PATH|RUN`: a checkpoint file, or every checkpoint of a run folder (a name in the results folder works). */
export async function verifyCommand(target: string, resultsDir: string): Promise<VerifyReport[]> {
  const dir = await resolveRunDir(target, resultsDir);
  if (dir) {
    const { checkpointDir } = await readRunLayout(dir);
    const files = await listCheckpoints(checkpointDir);
    if (!files.length) {
      throw new ManagerError(`no checkpoints in ${checkpointDir} (the checkpoints of run ${dir})`);
    }
    return await Promise.all(files.map((f) => verifyFile(f.path)));
  }
  return [await verifyFile(target)];
}

async function resolveRunDir(target: string, resultsDir: string): Promise<string | undefined> {
  for (const cand of [target, `${resultsDir}/${target}`]) {
    try {
      if ((await Deno.stat(cand)).isDirectory) return cand.replace(/\/+$/, "");
    } catch {
      // not there
    }
  }
  return undefined;
}

/** What `show` reports. */
export interface ShowInfo {
  /** The file. */
  path: string;
  /** The result of verifying the file. */
  integrity: VerifyReport;
  /** Epochs completed at the checkpoint. */
  epoch: number;
  /** Batches of the next epoch already trained (0 at an epoch boundary). */
  step_in_epoch: number;
  /** Batches trained over the whole run. */
  global_step: number;
  /** Training loss of every epoch. */
  train_losses: number[];
  /** Validation loss of every epoch. */
  val_losses: number[];
  /** Best validation loss and its epoch. */
  best: TrainingState["best"];
  /** Learning-rate schedule state. */
  scheduler: TrainingState["scheduler"];
  /** Adam step count and hyperparameters. */
  optimizer: TrainingState["adam"];
  /** Every setting of the run. */
  settings: TrainSettings;
  /** The GINO constructor arguments. */
  gino_config: unknown;
  /** Normalisation statistics of the training data. */
  normalization: unknown;
  /** Hash of the data the run trained on. */
  data_fingerprint: string;
  /** Sessions recorded. */
  sessions: TrainingState["history"]["sessions"];
  /** Every tensor: name, element type, shape, bytes. */
  tensors: { name: string; dtype: string; shape: number[]; bytes: number }[];
  /** Model parameters (scalars). */
  parameters: number;
}

/** `show PATH`: everything in one checkpoint. */
export async function showCommand(path: string): Promise<ShowInfo> {
  const integrity = await verifyFile(path);
  let file;
  try {
    file = await readSafetensors(path);
  } catch (e) {
    throw new ManagerError((e as Error).message);
  }
  const state = JSON.parse(file.metadata.training_state ?? "null") as TrainingState | null;
  if (!state) throw new ManagerError(`${path}: no training state in the header (not a gino-gw checkpoint)`);
  const tensors = Object.entries(file.tensors).map(([name, t]) => ({
    name,
    dtype: t.dtype,
    shape: t.shape,
    bytes: t.data.byteLength,
  }));
  return {
    path,
    integrity,
    epoch: state.epoch,
    step_in_epoch: state.step_in_epoch,
    global_step: state.global_step,
    train_losses: state.history.train_losses,
    val_losses: state.history.val_losses,
    best: state.best,
    scheduler: state.scheduler,
    optimizer: state.adam,
    settings: state.config,
    gino_config: state.gino_config,
    normalization: state.normalization,
    data_fingerprint: state.data_fingerprint,
    sessions: state.history.sessions,
    tensors,
    parameters: tensors.filter((t) => t.name.startsWith("model.")).reduce(
      (s, t) => s + t.shape.reduce((a, b) => a * b, 1),
      0,
    ),
  };
}

/** What `clean` did (or would do). */
export interface CleanReport {
  /** The run name (its folder name). */
  run: string;
  /** Checkpoint files kept. */
  kept: string[];
  /** Checkpoint files deleted (or that would be, with dry_run). */
  deleted: string[];
  /** Bytes freed (or that would be). */
  freed_bytes: number;
  /** True when nothing was deleted. */
  dry_run: boolean;
}

/** `clean RUN [KEEP]`: deletes all but the newest KEEP epoch checkpoints; never latest, best or final. */
export async function cleanCommand(
  target: string,
  resultsDir: string,
  keep: number,
  dryRun: boolean,
): Promise<CleanReport> {
  if (!Number.isInteger(keep) || keep < 0) {
    throw new ManagerError(`KEEP must be a whole number >= 0, got ${keep}`);
  }
  const dir = await resolveRunDir(target, resultsDir);
  if (!dir) throw new ManagerError(`no run folder ${target} (nor ${resultsDir}/${target})`);
  const files = await listCheckpoints((await readRunLayout(dir)).checkpointDir);
  const epochFiles = files.filter((f) => /^checkpoint_epoch_\d+\.safetensors$/.test(f.name)).sort((a, b) =>
    b.name.localeCompare(a.name)
  );
  const special = files.filter((f) => [LATEST, BEST, FINAL].includes(f.name));
  const del = epochFiles.slice(keep);
  const report: CleanReport = {
    run: dir,
    kept: [...special, ...epochFiles.slice(0, keep)].map((f) => f.name),
    deleted: del.map((f) => f.name),
    freed_bytes: del.reduce((s, f) => s + f.size, 0),
    dry_run: dryRun,
  };
  if (!dryRun) { for (const f of del) await Deno.remove(f.path); }
  return report;
}

/** `backup PATH [DEST]`: a verified copy named by run and epoch; refuses to overwrite. */
export async function backupCommand(
  path: string,
  dest: string,
): Promise<{ from: string; to: string; sha256: string }> {
  const before = await verifyFile(path);
  if (!before.ok) {
    throw new ManagerError(`not backing up a damaged checkpoint: ${before.problems.join("; ")}`);
  }
  const file = await readSafetensors(path);
  const state = JSON.parse(file.metadata.training_state) as TrainingState;
  const kind = path.split("/").pop()!.replace(/\.safetensors$/, "").replace(/_?checkpoint_?/, "") ||
    "checkpoint";
  const name = `${state.run_name}_epoch${String(state.epoch).padStart(4, "0")}${
    state.step_in_epoch ? `_step${state.step_in_epoch}` : ""
  }_${kind}.safetensors`;
  await Deno.mkdir(dest, { recursive: true });
  const to = `${dest}/${name}`;
  try {
    await Deno.stat(to);
    throw new ManagerError(`${to} exists already; not overwriting it (remove it or choose another DEST)`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const bytes = await Deno.readFile(path);
  const tmp = `${to}.${Deno.pid}.tmp`;
  writePoint(to);
  try {
    await Deno.writeFile(tmp, bytes, { createNew: true });
  } catch (e) {
    await Deno.remove(tmp).catch(() => {}); // a part written before the disk filled
    throw diskFullOr(e, to);
  }
  const after = await verifyFile(tmp);
  if (!after.ok || after.sha256 !== before.sha256) {
    await Deno.remove(tmp).catch(() => {});
    throw new ManagerError(
      `the copy at ${to} does not verify (${after.problems.join("; ")}); nothing was kept`,
    );
  }
  try {
    await Deno.link(tmp, to); // fails if `to` appeared meanwhile: never overwrite
  } finally {
    await Deno.remove(tmp).catch(() => {});
  }
  return { from: path, to, sha256: after.sha256! };
}

/** Refuses to replace `out` unless `force`. */
async function refuseOverwrite(out: string, force: boolean): Promise<void> {
  if (force) return;
  try {
    await Deno.lstat(out);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  throw new ManagerError(`${out} exists already; not overwriting it (choose another name, or pass --force)`);
}

/** `export PATH OUT`: the model weights alone, with the reference PyTorch names and layouts. */
export async function exportCommand(
  path: string,
  out: string,
  force = false,
): Promise<{ tensors: number; parameters: number; out: string }> {
  await refuseOverwrite(out, force);
  const v = await verifyFile(path);
  if (!v.ok) throw new ManagerError(v.problems.join("; "));
  const file = await readSafetensors(path);
  const weights: Record<string, { dtype: string; shape: number[]; data: Float32Array }> = {};
  for (const [k, t] of Object.entries(file.tensors)) {
    if (k.startsWith("model.")) {
      weights[k.slice(6)] = { dtype: "F32", shape: t.shape, data: t.data as Float32Array };
    }
  }
  await writeSafetensors(out, weights, { format: "pt" });
  return {
    tensors: Object.keys(weights).length,
    parameters: Object.values(weights).reduce((s, t) => s + t.data.length, 0),
    out,
  };
}

/**
 * The training settings of imported weights: CONFIG's `"settings"` (flag names as keys: `target-cols`,
 * `latent-grid`, ...) on the defaults, with the model and windows that the constructor arguments `kw` define.
 */
function importedSettings(
  raw: Record<string, unknown>,
  kw: Record<string, unknown>,
  configPath: string,
): TrainSettings {
  const given = (raw.settings ?? {}) as Record<string, unknown>;
  const s = settingsFromConfig(given, `${configPath}: settings`).settings;
  const need = <T>(k: string): T => {
    if (kw[k] === undefined) throw new ManagerError(`${configPath}: '${k}' is missing`);
    return kw[k] as T;
  };
  const cols = s.data.targetCols.length;
  const tin = need<number>("in_gno_out_channels"), tout = need<number>("out_channels");
  if (tin % cols || tout % cols) {
    throw new ManagerError(
      `${configPath}: in_gno_out_channels ${tin} / out_channels ${tout} do not divide by the ${cols} target column(s)`,
    );
  }
  if (kw.in_gno_radius !== kw.out_gno_radius) {
    throw new ManagerError(`${configPath}: different in/out GNO radii are not supported by train.ts`);
  }
  if (JSON.stringify(kw.in_gno_channel_mlp_layers) !== JSON.stringify(kw.out_gno_channel_mlp_layers)) {
    throw new ManagerError(`${configPath}: different in/out GNO kernel MLPs are not supported by train.ts`);
  }
  s.data.inputWindow = tin / cols;
  s.data.outputWindow = tout / cols;
  Object.assign(s.model, {
    gnoRadius: need<number>("in_gno_radius"),
    fnoModes: perAxisValues(need<number[]>("fno_n_modes")),
    fnoHiddenChannels: need<number>("fno_hidden_channels"),
    fnoLayers: need<number>("fno_n_layers"),
    liftingChannels: need<number>("lifting_channels"),
    gnoMlpLayers: need<number[]>("in_gno_channel_mlp_layers"),
    projectionChannelRatio: need<number>("projection_channel_ratio"),
  });
  const grid = raw.latent_grid_shape as number[] | undefined;
  if (grid && !("latent-grid" in given) && !("latent_grid" in given)) {
    s.model.latentGrid = perAxisValues(grid);
  }
  return s;
}

/** The tensors of an imported checkpoint: the model's weights and zero optimiser moments. */
async function importedTensors(
  model: Gino,
): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
  const tensors: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [k, t] of Object.entries(await model.readTorchStateDict())) {
    tensors[`model.${k}`] = { shape: t.shape, data: t.data };
  }
  for (const p of model.params) {
    const zeros = new Float32Array(p.torchShape.reduce((a, b) => a * b, 1));
    tensors[`optim.${p.name}.exp_avg`] = { shape: p.torchShape, data: zeros };
    tensors[`optim.${p.name}.exp_avg_sq`] = { shape: p.torchShape, data: zeros };
  }
  return tensors;
}

/** The training state of imported weights: epoch 0, a fresh schedule; the first run adopts its data. */
function importedState(s: TrainSettings, model: Gino, out: string): TrainingState {
  return {
    format: CHECKPOINT_FORMAT,
    epoch: 0,
    step_in_epoch: 0,
    partial_epoch: { loss_sum: 0, samples: 0, seconds: 0 },
    global_step: 0,
    scheduler: freshSchedule(s.optim, s.optim.epochs),
    adam: { step: 0, lr: s.optim.learningRate, beta1: 0.9, beta2: 0.999, eps: 1e-8 },
    sampler: null as unknown as TrainingState["sampler"],
    history: { train_losses: [], val_losses: [], epoch_seconds: [], sessions: [] },
    best: { val_loss: null, epoch: null },
    early_stopping: { bad_epochs: 0 },
    config: s,
    gino_config: model.config,
    normalization: null as unknown as TrainingState["normalization"],
    data_fingerprint: IMPORTED,
    run_name: s.run.runName ?? out.split("/").pop()!.replace(/\.safetensors$/, ""),
    saved_at: new Date().toISOString(),
  };
}

/**
 * `import TORCH --config CONFIG --out PATH`: a checkpoint (epoch 0, fresh optimiser) holding PyTorch weights, that
 * training can start or fine-tune from with `--resume-from PATH`. CONFIG is the reference constructor's keyword
 * arguments (or `{"gino_kwargs": {...}}`, as in the fixtures), optionally with `"settings"` (training flags such as
 * `target-cols` and `latent-grid`).
 */
export async function importCommand(
  torchPath: string,
  configPath: string,
  out: string,
  force = false,
): Promise<{ out: string; settings: TrainSettings }> {
  await refuseOverwrite(out, force);
  const raw = await readJson<Record<string, unknown>>(configPath);
  if (!raw) throw new ManagerError(`${configPath}: not found or not JSON`);
  let kw: Record<string, unknown>;
  try {
    kw = resolveGinoConfig((raw.gino_kwargs ?? raw) as Record<string, unknown>) as unknown as Record<
      string,
      unknown
    >;
  } catch (e) {
    throw new ManagerError(withPath(configPath, e));
  }
  const settings = importedSettings(raw, kw, configPath);
  await initBackend("cpu"); // only layout conversion: the plain backend does
  const model = createGino(ginoConfigFor(settings));
  try {
    try {
      model.loadTorchStateDict((await readSafetensors(torchPath)).tensors);
    } catch (e) {
      throw new ManagerError(withPath(torchPath, e));
    }
    await writeFileAtomic(
      out,
      await encodeCheckpoint(await importedTensors(model), importedState(settings, model, out)),
    );
  } finally {
    model.dispose();
  }
  return { out, settings };
}

export { CheckpointError };
