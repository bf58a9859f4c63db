/**
 * The training loop, in one place: data, model, optimiser, resume, epochs of patch batches, validation, learning-rate
 * schedule, checkpoints, loss history and curves, and stopping safely (signals, time limit, non-finite loss).
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

import { initBackend, tf } from "./tf.ts";
import type { BackendName } from "./tf.ts";
import { DataError, loadPatchDataset } from "./dataset.ts";
import { PatchBatchSampler } from "./sampler.ts";
import { BatchAssembler } from "./batch.ts";
import type { Batch } from "./batch.ts";
import { createGino, relativeL2Loss } from "./gino/model.ts";
import type { Gino, GinoGeometry } from "./gino/model.ts";
import type { GinoConfig } from "./gino/config.ts";
import { Adam } from "./adam.ts";
import { autoMicroBatch, latentGrid, predictWindow, trainStep } from "./step.ts";
import type { ResidualSpec } from "./step.ts";
import {
  CHECKPOINT_FORMAT,
  CheckpointError,
  IMPORTED,
  loadCheckpoint,
  restoreTensors,
  saveCheckpoint,
} from "./checkpoint.ts";
import type { Checkpoint, SessionRecord, TrainingState } from "./checkpoint.ts";
import {
  BEST,
  defaultRunName,
  epochCheckpointName,
  FINAL,
  findLatestCheckpoint,
  LATEST,
  RUN_LOCK,
  runFolderOf,
  RunLog,
} from "./runs.ts";
import { writeTextFileAtomic } from "./atomic.ts";
import { writeCurves } from "./plot/curves.ts";
import { DEMO_DIR, ensureDemoData } from "./demo.ts";
import { parseDuration } from "./options.ts";
import { FlagError } from "./cli.ts";

/** Exit statuses; see the module documentation. */
export const EXIT = { done: 0, usage: 2, stopped: 3, diverged: 4, interrupted: 130 } as const;

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

/** The GINO constructor arguments for a run's settings. */
export function ginoConfigFor(s: Record<string, unknown>): Partial<GinoConfig> {
  const cols = (s["target-cols"] as string[]).length;
  const modes = s["fno-modes"] as number[];
  return {
    in_gno_coord_dim: 3,
    out_gno_coord_dim: 3,
    in_gno_radius: s["gno-radius"] as number,
    out_gno_radius: s["gno-radius"] as number,
    in_gno_out_channels: (s["input-window-size"] as number) * cols,
    out_channels: (s["output-window-size"] as number) * cols,
    in_gno_channel_mlp_layers: [...(s["gno-mlp-layers"] as number[])],
    out_gno_channel_mlp_layers: [...(s["gno-mlp-layers"] as number[])],
    fno_n_layers: s["fno-layers"] as number,
    fno_n_modes: modes.length === 1 ? [modes[0], modes[0], modes[0]] : modes,
    fno_hidden_channels: s["fno-hidden-channels"] as number,
    lifting_channels: s["lifting-channels"] as number,
    projection_channel_ratio: s["projection-channel-ratio"] as number,
  };
}

function gridOf(s: Record<string, unknown>): number[] {
  const g = s["latent-grid"] as number[];
  return g.length === 1 ? [g[0], g[0], g[0]] : g;
}

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
  /** Where messages go (default: console). */
  quiet?: boolean;
}

/**
 * Runs (or resumes) training with the given settings (parsed flags, kebab-case keys; `__explicit` lists the flags
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

  // ---- resume: find the checkpoint; its settings are the base, explicit flags override compatible ones ----
  let ckpt: Checkpoint | undefined;
  const resumeFrom = settings["resume-from"] as string | undefined;
  if (resumeFrom === "auto") {
    const found = await findLatestCheckpoint(settings["results-dir"] as string, (m) => log.warn(m));
    if (found) ckpt = await loadCheckpoint(found.path);
    else log.info(`no checkpoint found in ${settings["results-dir"]}: starting a new run`);
  } else if (resumeFrom) {
    ckpt = await loadCheckpoint(resumeFrom);
  }
  let s: Record<string, unknown> = { ...settings };
  if (ckpt) {
    if (ckpt.state.format !== CHECKPOINT_FORMAT) {
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
    s = { ...saved };
    for (const key of explicit) s[key] = settings[key];
    for (const key of ["resume-from", "force-resume", "results-dir", "backend"]) {
      if (key in settings) s[key] = settings[key];
    }
  }

  // ---- data ----
  const demo = !s["base-data-dir"];
  if (demo) {
    s["base-data-dir"] = await ensureDemoData(DEMO_DIR, (m) => log.info(m));
    if (!ckpt) {
      const chosen: string[] = [];
      for (const [k, v] of Object.entries(DEMO_MODEL)) {
        if (explicit.includes(k)) continue;
        s[k] = v;
        chosen.push(`--${k} ${Array.isArray(v) ? v.join(",") : v}`);
      }
      if (chosen.length) {
        log.info(
          `built-in demo data: model defaults ${
            chosen.join(" ")
          } (a smaller model, radius ~2x the node spacing in ` +
            `standardised units, so that the default 5-epoch run finishes in a few minutes on two cores; and ` +
            `residual prediction, the change from the last input step, which the plain reference output needs ` +
            `far more epochs to match; pass model flags to override)`,
        );
      }
    }
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
  const imported = ckpt?.state.data_fingerprint === IMPORTED;
  if (ckpt && imported) {
    log.info(
      `starting from imported weights ${ckpt.path}: normalisation statistics computed from ${dataDir}`,
    );
    ckpt.state.normalization = ds.normalization;
    ckpt.state.data_fingerprint = ds.fingerprint;
  }
  if (ckpt && ckpt.state.data_fingerprint !== ds.fingerprint) {
    const msg =
      `the data differ from the checkpoint's (data fingerprint: saved ${ckpt.state.data_fingerprint}, now ${ds.fingerprint}; ${dataDir})`;
    if (!s["force-resume"]) {
      throw new CheckpointError(
        `cannot resume ${ckpt.path}: ${msg}; pass --force-resume to continue on these data`,
      );
    }
    log.warn(`warning: ${msg}; continuing because of --force-resume (the saved normalisation is used)`);
  }

  // ---- backend, model, optimiser, samplers ----
  const backend = await initBackend(s["backend"] as BackendName, (m) => log.info(m));
  const seed = s["seed"] as number;
  const gcfg = ginoConfigFor(s);
  const model = createGino(gcfg, seed);
  const adam = new Adam(model.variables, s["learning-rate"] as number);
  const batchSize = s["batch-size"] as number;
  const sampler = new PatchBatchSampler(ds.windowCounts("train"), {
    batchSize,
    shuffleWithinBatches: s["shuffle-within-batches"] as boolean,
    shufflePatches: s["shuffle-patches"] as boolean,
    seed: seed + 1,
  });
  if (sampler.batchesPerEpoch === 0) {
    throw new DataError(
      `no training windows: every patch's training part is shorter than ${s["input-window-size"]} + ${
        s["output-window-size"]
      } steps; ` +
        `use smaller windows or a smaller --val-ratio`,
    );
  }
  const valSampler = new PatchBatchSampler(ds.windowCounts("val"), {
    batchSize,
    shuffleWithinBatches: false,
    shufflePatches: false,
  });
  const assembler = new BatchAssembler(ds, batchSize);

  let state: TrainingState;
  if (ckpt) {
    restoreTensors(ckpt, model, adam);
    state = structuredClone(ckpt.state);
    if (imported) {
      state.sampler = sampler.getState();
      state.run_name = (s["run-name"] as string | undefined) ?? defaultRunName(startedAt);
    }
    try {
      sampler.setState(state.sampler);
    } catch (e) {
      if (!s["force-resume"]) throw new CheckpointError(`${ckpt.path}: ${(e as Error).message}`);
      log.warn(`warning: ${(e as Error).message}; the current epoch restarts with a new batch plan`);
      state.step_in_epoch = 0;
      state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
    }
  } else {
    state = {
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
      history: { train_losses: [], val_losses: [], epoch_seconds: [], sessions: [] },
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
  adam.lr = state.scheduler.lr;
  const epochs = s["epochs"] as number;
  const config: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(s)) {
    if (
      !["resume-from", "force-resume", "dry-run", "json", "help", "config", "_", "__explicit"].includes(k)
    ) config[k] = v;
  }
  state.config = config;

  // ---- run folder ----
  const runDir = ckpt && !imported
    ? (runFolderOf(ckpt.path) ?? `${s["results-dir"]}/${ckpt.state.run_name}`)
    : `${s["results-dir"]}/${state.run_name}`;
  const ckptDir = (s["checkpoint-dir"] as string | undefined) ?? `${runDir}/checkpoints`;
  await Deno.mkdir(ckptDir, { recursive: true });
  await Deno.mkdir(runDir, { recursive: true });
  log.attach(`${runDir}/train.log`);
  // a lock that says "running" to the checkpoint manager (pid and host), removed when this session ends
  const lockPath = `${runDir}/${RUN_LOCK}`;
  await Deno.writeTextFile(
    lockPath,
    JSON.stringify({ pid: Deno.pid, host: Deno.hostname(), start: startedAt.toISOString() }),
  );
  await writeTextFileAtomic(
    `${runDir}/config.json`,
    JSON.stringify(
      {
        settings: config,
        gino_config: model.config,
        normalization: ds.normalization,
        data_fingerprint: ds.fingerprint,
        data_dir: dataDir,
      },
      null,
      1,
    ) + "\n",
  );
  const session: SessionRecord = {
    start: startedAt.toISOString(),
    end: null,
    first_epoch: null,
    last_epoch: null,
    resumed_from: ckpt?.path ?? null,
    host: Deno.hostname(),
    backend: backend.backend + (backend.kernels?.blas ? ` + ${backend.kernels.blas}` : ""),
    exit: null,
  };
  state.history.sessions.push(session);
  log.info(
    ckpt
      ? `resuming ${runDir} from ${ckpt.path} (epoch ${state.epoch}${
        state.step_in_epoch ? `, batch ${state.step_in_epoch}` : ""
      }) towards ${epochs} epochs`
      : `new run ${runDir}: ${epochs} epochs, ${
        model.parameterCount.toLocaleString("en")
      } parameters, ${ds.patches.length} patches, ` +
        `${sampler.totalWindows} training / ${valSampler.totalWindows} validation windows, batch ${batchSize}`,
  );
  if (state.epoch >= epochs) {
    log.info(
      `nothing to do: the run already has ${state.epoch} epochs (--epochs ${epochs}); raise --epochs to train further`,
    );
    state.history.sessions.pop(); // a session that trained nothing is not recorded
    await Deno.remove(lockPath).catch(() => {});
    adam.dispose();
    model.dispose();
    log.close();
    return EXIT.done;
  }

  // ---- per-patch geometry (fixed for a patch: computed once) ----
  const grid = gridOf(s);
  const geometries = new Map<number, GinoGeometry>();
  const geometry = (p: number) => {
    let g = geometries.get(p);
    if (!g) {
      const pts = ds.patches[p].coords;
      g = model.geometry(pts, latentGrid(pts, grid), grid);
      geometries.set(p, g);
    }
    return g;
  };
  let sparse = 0;
  for (let p = 0; p < ds.patches.length; p++) {
    const g = geometry(p);
    if (g.stats.out.emptyShare > 0.1 || g.stats.in.emptyShare > 0.9) sparse++;
    log.info(
      `  ${ds.patches[p].name}: ${ds.patches[p].n} points (${
        ds.patches[p].nCore
      } core), edges ${g.stats.in.edges}; ` +
        `latent nodes without points ${
          (100 * g.stats.in.emptyShare).toFixed(0)
        }%, points without latent nodes ` +
        `${(100 * g.stats.out.emptyShare).toFixed(0)}% (mean ${g.stats.out.mean.toFixed(1)} per point)`,
    );
  }
  if (sparse) {
    log.warn(
      `warning: in ${sparse} patch(es) many points have no latent node within --gno-radius ${
        s["gno-radius"]
      } ` +
        `(their output is a constant); consider a larger radius or a finer --latent-grid`,
    );
  }
  const micro = (s["micro-batch"] as number | undefined) ??
    autoMicroBatch(
      ds.patches.map((p, i) => ({
        n: p.n,
        edges: geometries.get(i)!.stats.in.edges + geometries.get(i)!.stats.out.edges,
      })),
      grid,
      model.config.fno_hidden_channels,
      batchSize,
    );
  if (micro < batchSize) {
    log.info(`micro-batches of ${micro} windows (gradients accumulated over each batch of ${batchSize})`);
  }

  // ---- stopping: signals and time limit ----
  let stopReason: string | undefined;
  let sigints = 0;
  const onSignal = (sig: string) => () => {
    if (sig === "SIGINT" && ++sigints >= 2) {
      log.warn(
        "second interrupt: exiting now without writing a checkpoint (existing checkpoints are untouched)",
      );
      Deno.exit(EXIT.interrupted);
    }
    if (!stopReason) {
      stopReason = sig;
      log.warn(`${sig} received: finishing the current step, then writing a resumable checkpoint`);
    }
  };
  const handlers: [Deno.Signal, () => void][] = [["SIGTERM", onSignal("SIGTERM")], [
    "SIGINT",
    onSignal("SIGINT"),
  ]];
  for (const [sig, h] of handlers) {
    try {
      Deno.addSignalListener(sig, h);
    } catch {
      // signal not supported on this platform
    }
  }
  // Test hook: send this process SIGTERM after the given global step (exercises the real signal path).
  const hook = Deno.env.get("GINO_GW_TEST_SIGTERM_AFTER_STEP");
  const signalAfter = hook ? Number(hook) : undefined;
  const limitText = s["time-limit"] as string | undefined;
  const deadline = limitText ? t0 + parseDuration(limitText)! * 1000 : Infinity;
  let stepMs = 0, valMs = 0, ckptMs = 2000;
  const fits = (ms: number) => performance.now() + ms + ckptMs * 1.5 < deadline;

  const residual: ResidualSpec | undefined = s["residual"]
    ? {
      cols: (s["target-cols"] as string[]).length,
      tin: s["input-window-size"] as number,
      tout: s["output-window-size"] as number,
    }
    : undefined;
  const valLossFn = (pred: tf.Tensor3D, y: tf.Tensor3D, nCore: number) =>
    relativeL2Loss(pred, y, nCore, s["loss-eps"] as number);
  const cols = s["target-cols"] as string[];
  const tout = s["output-window-size"] as number;
  const tensorsOf = (b: Batch) => {
    const cin = b.inputs.length / (b.b * b.n), cout = b.targets.length / (b.b * b.n);
    return [tf.tensor3d(b.inputs, [b.b, b.n, cin]), tf.tensor3d(b.targets, [b.b, b.n, cout])] as const;
  };

  const save = async (kind: "epoch" | "stop" | "final", improved: boolean): Promise<string[]> => {
    const tw = performance.now();
    state.adam = adam.getState();
    state.sampler = sampler.getState();
    state.saved_at = new Date().toISOString();
    const written: string[] = [];
    const write = async (name: string) => {
      await saveCheckpoint(`${ckptDir}/${name}`, model, adam, state);
      written.push(`${ckptDir}/${name}`);
    };
    if (kind !== "stop" && state.epoch % (s["save-checkpoint-every"] as number) === 0) {
      await write(epochCheckpointName(state.epoch));
    }
    if (improved) await write(BEST);
    if (kind === "final") await write(FINAL);
    await write(LATEST);
    ckptMs = Math.max(500, (performance.now() - tw) / written.length);
    return written;
  };

  // ---- the epochs ----
  let exit: number = EXIT.done;
  let exitText = "completed";
  const progress = Deno.stdout.isTerminal() && !hooks.quiet;
  const enc = new TextEncoder();
  try {
    epochs: while (state.epoch < epochs) {
      const epoch = state.epoch + 1;
      if (sampler.epoch === state.epoch) {
        // a fresh epoch (not one interrupted half-way); mid-epoch stops are resumable, so one step must fit
        if (!stopReason && !fits(stepMs * 1.5)) stopReason = "time limit";
        if (stopReason) break;
        sampler.beginEpoch();
        state.step_in_epoch = 0;
        state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
      }
      session.first_epoch ??= epoch;
      const epochStart = performance.now() - state.partial_epoch.seconds * 1000;
      // training batches
      for (let sb = sampler.next(); sb; sb = sampler.next()) {
        const ts = performance.now();
        const batch = assembler.assemble("train", sb);
        const [x, y] = tensorsOf(batch);
        const loss = trainStep(model, geometry(sb.patch), x, y, batch.nCore, micro, adam, {
          clipNorm: s["grad-clip-norm"] as number | undefined,
          lossEps: s["loss-eps"] as number,
          residual,
        });
        tf.dispose([x, y]);
        if (!Number.isFinite(loss)) {
          exit = EXIT.diverged;
          exitText = `loss became ${loss} at epoch ${epoch}, batch ${state.step_in_epoch + 1}`;
          log.warn(
            `error: the training loss became ${loss} at epoch ${epoch}, batch ${
              state.step_in_epoch + 1
            }; stopped without ` +
              `saving. The last good checkpoint is ${ckptDir}/${LATEST} (if one was written). Lower --learning-rate, set ` +
              `--grad-clip-norm, or set --loss-eps (near-zero targets make the relative loss blow up).`,
          );
          break epochs;
        }
        state.partial_epoch.loss_sum += loss * batch.b;
        state.partial_epoch.samples += batch.b;
        state.step_in_epoch++;
        state.global_step++;
        const dt = performance.now() - ts;
        stepMs = stepMs === 0 ? dt : Math.max(dt, 0.8 * stepMs + 0.2 * dt);
        state.partial_epoch.seconds = (performance.now() - epochStart) / 1000;
        if (progress) {
          const done = state.step_in_epoch, total = sampler.batchesPerEpoch;
          const eta = ((total - done) * stepMs) / 1000;
          const bar = "=".repeat(Math.round((20 * done) / total)).padEnd(20);
          Deno.stdout.writeSync(enc.encode(
            `\r epoch ${epoch}/${epochs} [${bar}] ${done}/${total} loss ${
              fmtLoss(state.partial_epoch.loss_sum / state.partial_epoch.samples)
            } ETA ${fmtTime(eta)} `,
          ));
        }
        if (signalAfter !== undefined && state.global_step === signalAfter) Deno.kill(Deno.pid, "SIGTERM");
        if (!stopReason && !fits(stepMs * 1.5)) stopReason = "time limit";
        // let a pending signal's handler run before the next step starts (the step itself is synchronous)
        await new Promise((r) => setTimeout(r, signalAfter !== undefined ? 20 : 0));
        if (stopReason) break;
      }
      if (progress) Deno.stdout.writeSync(enc.encode("\r\x1b[K"));
      if (stopReason && (sampler.position < sampler.batchesPerEpoch || !fits(valMs * 1.2))) break;
      // validation
      const tv = performance.now();
      const val = validate(
        model,
        valSampler,
        assembler,
        geometry,
        micro,
        valLossFn,
        tensorsOf,
        cols,
        tout,
        residual,
      );
      valMs = performance.now() - tv;
      const trainLoss = state.partial_epoch.loss_sum / state.partial_epoch.samples;
      if (!Number.isFinite(val.loss)) {
        exit = EXIT.diverged;
        exitText = `validation loss became ${val.loss} at epoch ${epoch}`;
        log.warn(
          `error: the validation loss became ${val.loss} at epoch ${epoch}; stopped without saving (last good checkpoint kept)`,
        );
        break;
      }
      const seconds = (performance.now() - epochStart) / 1000;
      state.epoch = epoch;
      state.history.train_losses.push(trainLoss);
      state.history.val_losses.push(val.loss);
      state.history.epoch_seconds.push(seconds);
      session.last_epoch = epoch;
      const improved = state.best.val_loss === null || val.loss < state.best.val_loss;
      if (improved) {
        state.best = { val_loss: val.loss, epoch };
        state.early_stopping.bad_epochs = 0;
      } else state.early_stopping.bad_epochs++;
      const lrUsed = adam.lr;
      if (epoch % state.scheduler.interval === 0) {
        state.scheduler.lr *= state.scheduler.gamma;
        adam.lr = state.scheduler.lr;
      }
      state.step_in_epoch = 0;
      state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
      const patience = s["early-stopping-patience"] as number | undefined;
      const early = patience !== undefined && state.early_stopping.bad_epochs >= patience;
      const last = epoch >= epochs || early;
      const written = await save(last ? "final" : "epoch", improved);
      const samplesPerSec = sampler.totalWindows / Math.max(seconds, 1e-9);
      log.info(
        `epoch ${epoch}/${epochs}  train ${fmtLoss(trainLoss)}  val ${fmtLoss(val.loss)}` +
          (cols.length > 1
            ? ` (${cols.map((c, i) => `${c} ${fmtLoss(val.perColumn[i])}`).join(", ")})`
            : "") +
          `  lr ${lrUsed.toExponential(2)}  ${seconds.toFixed(1)} s  ${samplesPerSec.toFixed(1)} samples/s` +
          (improved ? "  (best)" : "") + `  saved ${written.map((w) => w.split("/").pop()).join(", ")}`,
      );
      const metrics: Record<string, unknown> = {
        epoch,
        train_loss: trainLoss,
        val_loss: val.loss,
        lr: lrUsed,
        epoch_seconds: seconds,
        samples_per_s: samplesPerSec,
        best: improved,
        time: new Date().toISOString(),
        checkpoints: written,
      };
      cols.forEach((c, i) => (metrics[`val_loss_${c}`] = val.perColumn[i]));
      await Deno.writeTextFile(`${runDir}/metrics.jsonl`, JSON.stringify(metrics) + "\n", { append: true });
      await writeHistory(runDir, state);
      if (early) {
        exitText = `early stopping: no better validation loss for ${patience} epochs`;
        log.info(exitText);
        break;
      }
    }
    if (stopReason && exit === EXIT.done && state.epoch < epochs) {
      exit = EXIT.stopped;
      exitText = `stopped by ${stopReason} at epoch ${state.epoch}${
        state.step_in_epoch ? ` + ${state.step_in_epoch} batches` : ""
      }`;
      const written = await save("stop", false);
      log.info(`${exitText}; resumable checkpoint ${written.join(", ")}; continue with --resume-from auto`);
    }
  } finally {
    for (const [sig, h] of handlers) {
      try {
        Deno.removeSignalListener(sig, h);
      } catch {
        // not registered
      }
    }
    session.end = new Date().toISOString();
    session.exit = exitText;
    await Deno.remove(lockPath).catch(() => {});
    if (exit !== EXIT.diverged) await writeHistory(runDir, state).catch(() => {});
    for (const g of geometries.values()) g.dispose();
    adam.dispose();
    model.dispose();
  }
  if (exit === EXIT.done) {
    log.info(
      `done: ${state.epoch} epochs, best validation loss ${
        state.best.val_loss === null ? "-" : fmtLoss(state.best.val_loss)
      } ` +
        `(epoch ${state.best.epoch}); ${runDir} (${
          ((performance.now() - t0) / 1000).toFixed(0)
        } s this session)`,
    );
  }
  log.close();
  return exit;
}

/** Validation over all validation windows; loss = mean over samples (as training), plus per target column. */
function validate(
  model: Gino,
  sampler: PatchBatchSampler,
  assembler: BatchAssembler,
  geometry: (p: number) => GinoGeometry,
  micro: number,
  lossFn: (p: tf.Tensor3D, y: tf.Tensor3D, n: number) => tf.Scalar,
  tensorsOf: (b: Batch) => readonly [tf.Tensor3D, tf.Tensor3D],
  cols: string[],
  tout: number,
  residual?: ResidualSpec,
): { loss: number; perColumn: number[] } {
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
        const pred = predictWindow(model, geometry(sb.patch), xs, residual);
        const out = [lossFn(pred, ys, batch.nCore)];
        if (cols.length > 1) {
          cols.forEach((_, c) =>
            out.push(
              lossFn(
                pred.slice([0, 0, c * tout], [-1, -1, tout]),
                ys.slice([0, 0, c * tout], [-1, -1, tout]),
                batch.nCore,
              ),
            )
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
  if (n === 0) return { loss: NaN, perColumn: perCol.map(() => NaN) };
  return { loss: sum / n, perColumn: perCol.map((v) => v / n) };
}

/** Writes `loss_history.json` and the curves. */
async function writeHistory(runDir: string, state: TrainingState): Promise<void> {
  const h = state.history;
  const resumes: number[] = [];
  h.sessions.forEach((sess, i) => {
    if (i > 0 && sess.first_epoch !== null) resumes.push(sess.first_epoch);
  });
  await writeTextFileAtomic(
    `${runDir}/loss_history.json`,
    JSON.stringify(
      {
        train_losses: h.train_losses,
        val_losses: h.val_losses,
        epoch_seconds: h.epoch_seconds,
        total_epochs: h.train_losses.length,
        best: state.best,
        last_updated: new Date().toISOString(),
        sessions: h.sessions,
      },
      null,
      1,
    ) + "\n",
  );
  const wall = h.sessions.reduce(
    (sum, x) => sum + ((x.end ? Date.parse(x.end) : Date.now()) - Date.parse(x.start)) / 1000,
    0,
  );
  await writeCurves(runDir, {
    run: state.run_name,
    train: h.train_losses,
    val: h.val_losses,
    resumes: [...new Set(resumes)],
    sessions: h.sessions.length,
    wallSeconds: wall,
  });
}

export { FlagError };
