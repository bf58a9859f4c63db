/**
 * The training loop, top to bottom: check settings and plan the resume -> load data -> build model, optimiser and
 * samplers -> open the run folder (repairing what a killed session left) -> for each epoch: train, evaluate,
 * record, checkpoint, decide to stop -> finish. Every setting and the data are checked before anything is
 * written; a run folder appears only once they are known to be good.
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

import { initBackend } from "../model/backend.ts";
import type { BackendInfo } from "../model/backend.ts";
import { writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { appendTextFile, SpaceReserve, writePoint } from "../io/disk_full.ts";
import { EXIT } from "../errors.ts";
import { describeError } from "../cli/main.ts";
import { checkpointTensors, encodeCheckpoint, IMPORTED } from "./checkpoint.ts";
import type { Checkpoint, SessionRecord } from "./checkpoint.ts";
import { runFolderOf, runLayout } from "./layout.ts";
import type { RunLayout } from "./layout.ts";
import { RunLog } from "./log.ts";
import { RunLock } from "./runlock.ts";
import { checkpointNames, earlyStopped, isFinished, policyOf } from "./policy.ts";
import {
  epochLogLine,
  epochRecord,
  historyUpTo,
  recordEpoch,
  writeHistory,
  writeHistoryJsonSync,
} from "./history.ts";
import { reconcileRun } from "./reconcile.ts";
import { validateSettings } from "./settings.ts";
import type { TrainSettings } from "./settings.ts";
import { planResume } from "./resume.ts";
import type { ResumeOptions } from "./resume.ts";
import { loadTrainingData, patchDir } from "./training_data.ts";
import { disposeSession, prepareSession } from "./session.ts";
import type { Session, SessionParts } from "./session.ts";
import { evaluate, trainEpoch } from "./epoch.ts";
import type { Evaluation } from "./epoch.ts";
import { describeSchedule, lrAt, stepSchedule } from "./schedule.ts";
import { refineBudget } from "./budget.ts";
import { StopControl } from "./stopping.ts";
import { allAgree, bcastString, CollectiveStall, currentWorld } from "../parallel/world.ts";
import { configureThreads } from "../parallel/threads.ts";
import { formatCounters } from "../model/gpu/runtime.ts";
import type { World } from "../parallel/world.ts";
import { loadCheckpoint } from "./checkpoint.ts";
import { defaultRunName, SPACE_RESERVE } from "./layout.ts";
import { DataError } from "../data/dataset.ts";
import type { RunLockInfo } from "./runlock.ts";

const fmtLoss = (v: number) => (Number.isFinite(v) ? v.toFixed(6) : String(v));

/** How {@linkcode train} is invoked, beyond the settings. */
export interface TrainOptions extends ResumeOptions {
  /** Settings given explicitly (`group.field` keys, e.g. `model.gnoRadius`): a resume applies only these. */
  explicit?: Iterable<string>;
  /** Log to `train.log` only (errors and warnings still go to stderr). */
  quiet?: boolean;
  /** The processes training together (default: this process's world, see `parallel/world.ts`). */
  world?: World;
}

/** Epochs between rewrites of `training_curves.html` (the SVG and PNG curves are written every epoch). */
const HTML_EVERY = 10;

/** Runs (or resumes) training with the given settings. Returns the exit status. */
export async function train(settings: TrainSettings, options: TrainOptions = {}): Promise<number> {
  const world = options.world ?? currentWorld();
  // rank 0 writes the run folder and speaks; the other ranks stay silent unless they fail
  const log = new RunLog(undefined, options.quiet || world.rank !== 0, world.rank !== 0);
  const startedAt = new Date(), t0 = performance.now();
  const explicit = new Set(options.explicit ?? []);
  // check everything before anything is written
  validateSettings(settings);
  // the start-up's collectives wait as long as the timeout given (or the automatic one)
  world.watch({ timeoutS: settings.run.collectiveTimeout, stopAskedAt: () => undefined, stepMs: () => 0 });
  const plan = await agreedPlan(world, settings, explicit, options, log, startedAt);
  const { checkpoint: ckpt, settings: s } = plan;
  validateSettings(s);
  const imported = ckpt?.state.data_fingerprint === IMPORTED;
  const ds = await loadTrainingData(s, ckpt, explicit, !!options.forceResume, log);
  await agreeOnData(world, ds.fingerprint);
  // the largest product of a step: the FNO's skip over every latent node of a batch's windows
  const q = s.model.latentGrid.reduce((a, b) => a * b, 1), c = s.model.fnoHiddenChannels;
  const userThreads = Deno.env.get("OPENBLAS_NUM_THREADS") !== undefined;
  const threads = configureThreads(world, s.data.batchSize * q * c * c);
  if (world.size === 1 && threads === 1 && !userThreads) {
    log.info("BLAS: one thread (this model's matrix products are too small to gain from more)");
  }
  const backend = await initBackend(s.run.backend, (m) => log.info(m));
  const parts = prepareSession(s, ds, ckpt, {
    imported,
    learningRateGiven: explicit.has("optim.learningRate"),
    forceResume: !!options.forceResume,
    runName: plan.runName,
    log,
    world,
  });
  if (world.size > 1) describeLayout(parts, threads, log);
  // the run folder
  let ses: Session;
  try {
    ses = await openRun(parts, imported ? undefined : ckpt, explicit, backend, { startedAt, t0, log });
  } catch (e) {
    disposeSession(parts);
    throw e;
  }
  let exit: number = EXIT.done, failure: unknown = undefined;
  try {
    exit = await runSession(ses, imported ? undefined : ckpt);
    return exit;
  } catch (e) {
    failure = e ?? new Error("unknown failure");
    const { line, code } = describeError(e);
    closeRecord(ses, code, `failed: ${line}`); // also over "completed": the last save failed
    throw e;
  } finally {
    await finish(ses, exit, t0, failure);
  }
}

/**
 * Opens the run folder: where it is, the run lock (refused while another session trains it), the log file, this
 * session's record, and the stop conditions.
 */
async function openRun(
  parts: SessionParts,
  resumed: Checkpoint | undefined,
  explicit: Set<string>,
  backend: BackendInfo,
  o: { startedAt: Date; t0: number; log: RunLog },
): Promise<Session> {
  const layout = layoutFor(parts.s, explicit, resumed, parts.state.run_name);
  const writer = parts.world.rank === 0;
  let lock = RunLock.none(layout), previous: RunLockInfo | undefined, reserve = SpaceReserve.none();
  if (writer) {
    await Deno.mkdir(layout.dir, { recursive: true });
    await Deno.mkdir(layout.checkpointDir, { recursive: true });
    ({ lock, previous } = await RunLock.acquire(layout, o.startedAt.toISOString(), (m) => o.log.warn(m)));
    // room for the session's last words on a disk that fills: the error line, the history with its record
    // (before the log: a disk already full stops the session before it writes anything)
    const history = await Deno.stat(layout.history).then((st) => st.size, () => 0);
    try {
      reserve = SpaceReserve.create(`${layout.dir}/${SPACE_RESERVE}`, (64 << 10) + 2 * history);
    } catch (e) {
      lock.release();
      throw e;
    }
    o.log.attach(layout.log);
    await reportRun(layout.dir, o.log);
  }
  await parts.world.barrier("the barrier after opening the run folder"); // the others wait for the folder and lock
  const record: SessionRecord = {
    start: o.startedAt.toISOString(),
    end: null,
    first_epoch: null,
    last_epoch: null,
    resumed_from: resumed?.path ?? null,
    host: Deno.hostname(),
    backend: backend.backend + (backend.kernels?.blas ? ` + ${backend.kernels.blas}` : ""),
    exit: null,
    exit_status: null,
    ...jobOf(),
  };
  const ses: Session = {
    ...parts,
    layout,
    lock,
    record,
    startStep: parts.state.global_step,
    policy: policyOf(parts.s),
    stop: new StopControl(parts.s.run.timeLimit, o.t0, () => hardExit(ses), (m) => o.log.warn(m)),
    log: o.log,
    previousLock: previous,
    writer,
    reserve,
    savedEpochs: parts.state.history.train_losses.length,
  };
  return ses;
}

/** The scheduler job and chain a session runs in, as the job scripts export them (none when run by hand). */
function jobOf(): { job?: string; chain?: string } {
  const job = envOf("GINO_GW_JOB_ID"), chain = envOf("GINO_GW_CHAIN_ID");
  return { ...(job ? { job } : {}), ...(chain ? { chain } : {}) };
}

/**
 * Tells the job script which run this session trains (GINO_GW_RUN_FILE: the run folder's name), so that a chain's
 * next job resumes this run whatever else appears in the results folder.
 */
async function reportRun(dir: string, log: RunLog): Promise<void> {
  const file = envOf("GINO_GW_RUN_FILE");
  if (!file) return;
  try {
    writePoint(file);
    await Deno.writeTextFile(file, dir.slice(dir.lastIndexOf("/") + 1) + "\n");
  } catch (e) {
    log.warn(`warning: could not write the run's name to GINO_GW_RUN_FILE=${file}: ${(e as Error).message}`);
  }
}

function envOf(name: string): string | undefined {
  try {
    return Deno.env.get(name) || undefined;
  } catch {
    return undefined;
  }
}

/** A second Ctrl-C: the session's true record, then out (existing checkpoints untouched). */
function hardExit(ses: Session): void {
  closeRecord(ses, EXIT.interrupted, "second interrupt: exited at once");
  if (idle(ses)) dropRecord(ses);
  ses.reserve?.release();
  if (ses.writer) writeHistoryJsonSync(ses.layout, ses.state);
  ses.lock.release();
}

/** Repairs the run folder, records the settings, and trains (or says there is nothing left to do). */
async function runSession(ses: Session, resumed: Checkpoint | undefined): Promise<number> {
  const { state, log, policy } = ses;
  if (resumed && ses.writer) await repair(ses, resumed);
  if (ses.writer) await writeConfig(ses);
  if (isFinished(state, policy)) {
    if (ses.writer) await writeHistory(ses.layout, state, { html: true });
    log.info(
      `nothing to do: the run already has ${state.epoch} epochs` +
        (earlyStopped(state, policy) ? " (early stopping)" : "") +
        ` (--epochs ${policy.epochs}); raise --epochs to train further`,
    );
    return EXIT.done;
  }
  state.history.sessions.push(ses.record);
  const b = ses.s.data.batchSize;
  log.info(
    resumed
      ? `resuming ${ses.layout.dir} from ${resumed.path} (epoch ${state.epoch}${
        state.step_in_epoch ? `, batch ${state.step_in_epoch}` : ""
      }) towards ${policy.epochs} epochs`
      : `new run ${ses.layout.dir}: ${policy.epochs} epochs, ${
        ses.model.parameterCount.toLocaleString("en")
      } ` +
        `parameters, ${ses.ds.patches.length} patches, ${ses.sampler.totalWindows} training / ` +
        `${ses.valSampler.totalWindows} validation windows, batch ${b}`,
  );
  if (ses.micro < b) {
    log.info(`micro-batches of ${ses.micro} windows (gradients accumulated over each batch of ${b})`);
  }
  log.info(`learning rate: ${describeSchedule(state.scheduler)}`);
  ses.stop.install();
  // a collective that waits for a rank that stopped answering gives up after the timeout, or soon after a stop
  ses.world.watch({
    timeoutS: ses.s.run.collectiveTimeout,
    stopAskedAt: () => ses.stop.stopAskedAt(),
    stepMs: () => ses.stop.stepMs,
  });
  try {
    return await runEpochs(ses);
  } catch (e) {
    if (e instanceof CollectiveStall) return await stalled(ses, e);
    throw e;
  }
}

/**
 * A collective given up (a rank stopped answering, or a stop was asked for while one did not come): every rank holds
 * the weights of the last completed all-reduce, so rank 0 saves them as a resumable checkpoint; exit status 3 (job
 * scripts resubmit). No MPI call follows (see `CollectiveStall`).
 */
async function stalled(ses: Session, e: CollectiveStall): Promise<number> {
  const at = atText(ses.state);
  const text = e.why === "timeout"
    ? `stopped at ${at}: a rank stopped answering (${e.message})`
    : e.why === "gone"
    ? `stopped at ${at}: a rank ended (${e.message})`
    : `stopped by ${ses.stop.reason ?? "a stop"} at ${at} while a rank did not answer (${e.message})`;
  if (!ses.writer) {
    closeRecord(ses, EXIT.stopped, text);
    console.error(`[rank ${ses.world.rank}] ${text}; rank 0 saves the run`);
    return EXIT.stopped;
  }
  return await saveAndStop(ses, text, (m) => ses.log.warn(m));
}

/** Where a run is: `epoch N` or `epoch N + K batches`. */
const atText = (state: Session["state"]) =>
  `epoch ${state.epoch}${state.step_in_epoch ? ` + ${state.step_in_epoch} batches` : ""}`;

/** The epochs of a session; returns the exit status. */
async function runEpochs(ses: Session): Promise<number> {
  const { state, sampler, stop } = ses;
  while (state.epoch < ses.policy.epochs && !earlyStopped(state, ses.policy)) {
    const epoch = state.epoch + 1;
    if (sampler.epoch === state.epoch) {
      // a fresh epoch (not one interrupted half-way); mid-epoch stops are resumable, so one step must fit
      stop.beforeEpoch();
      if (await stop.sync(ses.world)) break;
      sampler.beginEpoch();
      state.step_in_epoch = 0;
      state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
    }
    ses.record.first_epoch ??= epoch;
    const epochStart = performance.now() - state.partial_epoch.seconds * 1000;
    const end = await trainEpoch(ses);
    if (typeof end === "object") {
      return diverged(
        ses,
        `the training loss became ${end.diverged} at epoch ${epoch}, batch ${state.step_in_epoch + 1}`,
      );
    }
    // a stop asked for during the last batches: validate only if that and a checkpoint still fit (all ranks agree)
    if (
      end === "stop" ||
      !(await allAgree(
        ses.world,
        !(stop.reason && !stop.fits(stop.valMs * 1.2)),
        "the agreement on validating",
      ))
    ) break;
    const tv = performance.now();
    const val = await evaluate(ses);
    stop.valMs = performance.now() - tv;
    if (!Number.isFinite(val.loss)) {
      return diverged(ses, `the validation loss became ${val.loss} at epoch ${epoch}`);
    }
    await endEpoch(ses, val, (performance.now() - epochStart) / 1000);
  }
  if (state.epoch >= ses.policy.epochs || earlyStopped(state, ses.policy)) {
    if (earlyStopped(state, ses.policy)) ses.log.info(completionText(ses));
    return EXIT.done;
  }
  return await stopResumably(ses);
}

/** Closes an epoch: records it, steps the schedule, saves what the policy says, writes its log and metrics lines. */
async function endEpoch(ses: Session, val: Evaluation, seconds: number): Promise<void> {
  const { state, adam } = ses;
  const epoch = state.epoch + 1;
  const trainLoss = state.partial_epoch.loss_sum / state.partial_epoch.samples;
  // (before anything of the epoch is recorded: its broadcast may meet a rank that stopped answering)
  const refine = epoch === 1 && !!state.scheduler.budget && !state.scheduler.budget.refined;
  if (refine) await refineBudget(ses, seconds);
  // the rate of the epoch's last step (the rate of the whole epoch for the exponential schedule)
  recordEpoch(state, {
    train: trainLoss,
    val: val.loss,
    perColumn: val.perColumn,
    lr: state.scheduler.lr,
    seconds,
  });
  if (refine && ses.writer) await writeConfig(ses); // the planned epochs are the run's target
  state.epoch = epoch;
  ses.record.last_epoch = epoch;
  if (state.best.val_loss === null || val.loss < state.best.val_loss) {
    state.best = { val_loss: val.loss, epoch };
    state.early_stopping.bad_epochs = 0;
  } else state.early_stopping.bad_epochs++;
  stepSchedule(state.scheduler, epoch);
  adam.lr = lrAt(state.scheduler, state.global_step);
  state.step_in_epoch = 0;
  state.partial_epoch = { loss_sum: 0, samples: 0, seconds: 0 };
  if (isFinished(state, ses.policy)) closeRecord(ses, EXIT.done, completionText(ses));
  await saveState(ses);
  const rec = epochRecord(state, epoch, ses.sampler.totalWindows, ses.policy);
  ses.log.info(epochLogLine(rec, ses.policy.epochs));
  const gpu = ses.gpuPerStep;
  ses.gpuPerStep = undefined;
  if (gpu) ses.log.record(`GPU work per training step in epoch ${epoch}: ${formatCounters(gpu)}`);
  if (!ses.writer) return;
  await appendTextFile(ses.layout.metrics, JSON.stringify(gpu ? { ...rec, gpu_per_step: gpu } : rec) + "\n");
  // the HTML page (plotly inlined, 4-5 MB) every few epochs; the session's end writes it too
  await writeHistory(ses.layout, state, { html: epoch % HTML_EVERY === 0 });
  await ses.lock.heartbeat();
}

/** A stop before the target (signal or time limit): the resumable checkpoint, exit 3. */
async function stopResumably(ses: Session): Promise<number> {
  return await saveAndStop(
    ses,
    `stopped by ${ses.stop.reason} at ${atText(ses.state)}`,
    (m) => ses.log.info(m),
  );
}

/** Closes the session's record with `text`, writes the resumable checkpoint (unless idle) and says so; exit 3. */
async function saveAndStop(ses: Session, text: string, say: (m: string) => void): Promise<number> {
  closeRecord(ses, EXIT.stopped, text);
  const rd = ses.s.run.resultsDir;
  const hint = `continue with deno task train --resume-from auto` +
    (rd !== "results" ? ` --results-dir ${rd}` : "");
  if (idle(ses)) {
    dropRecord(ses); // nothing trained: the checkpoint already holds this state
    say(`${text} before training a step; nothing new to save; ${hint}`);
    return EXIT.stopped;
  }
  const written = await saveState(ses);
  if (ses.writer) await writeHistory(ses.layout, ses.state, { html: true });
  ses.historyFinal = true; // a stop is quick: the job may be killed soon after the signal
  say(`${text}; resumable checkpoint ${written.join(", ")}; ${hint}`);
  return EXIT.stopped;
}

/** A non-finite loss: nothing saved, exit 4. */
function diverged(ses: Session, what: string): number {
  closeRecord(ses, EXIT.diverged, what.replace(/^the (training|validation) /, ""));
  ses.log.warn(
    `error: ${what}; stopped without saving. The last good checkpoint is ${ses.layout.checkpointDir}/` +
      `latest_checkpoint.safetensors (if one was written). Lower --learning-rate, set --grad-clip-norm, or set ` +
      `--loss-eps (near-zero targets make the relative loss blow up).`,
  );
  return EXIT.diverged;
}

/** Writes the checkpoint files the policy names for the current state; returns their paths. */
async function saveState(ses: Session): Promise<string[]> {
  if (!ses.writer) return [];
  const tw = performance.now();
  const { state } = ses;
  await ses.engine?.sync(); // the GPU engine's weights and moments into the tfjs variables the checkpoint reads
  state.adam = ses.adam.getState();
  state.sampler = ses.sampler.getState();
  state.saved_at = new Date().toISOString();
  const written: string[] = [];
  // every file of one save holds the same bytes: encoded (tensors read, hashed) once
  const bytes = await encodeCheckpoint(await checkpointTensors(ses.model, ses.adam), state);
  for (const name of checkpointNames(state, ses.policy)) {
    await writeFileAtomic(`${ses.layout.checkpointDir}/${name}`, bytes);
    written.push(`${ses.layout.checkpointDir}/${name}`);
  }
  ses.stop.ckptMs = Math.max(500, performance.now() - tw); // (a stop writes one file: at most this)
  ses.savedEpochs = state.history.train_losses.length;
  return written;
}

/**
 * The end of a session, however it ends: its record, the history, the lock released, tensors freed. When the
 * session itself ended well (`failed` false), a history it cannot write (a full disk) is its error; after an
 * error, the first error is the one reported.
 */
async function finish(ses: Session, exit: number, t0: number, failure: unknown): Promise<void> {
  const { state, log } = ses;
  const failed = failure !== undefined;
  ses.stop.uninstall();
  if (ses.record.exit === null) closeRecord(ses, exit, "completed");
  const recorded = state.history.sessions.includes(ses.record);
  if (recorded && idle(ses) && !ses.historyFinal) dropRecord(ses); // a session that changed nothing is not recorded
  let error: unknown;
  if (failed) lastWords(ses, failure, recorded);
  else if (recorded && !ses.historyFinal && ses.writer) {
    await writeHistory(ses.layout, state, { html: true }).catch((e) => {
      error = e;
    });
    if (error) {
      const { line, code } = describeError(error);
      closeRecord(ses, code, `failed: ${line}`);
      lastWords(ses, error, true);
    }
  }
  // the curves of a failed session, if the disk still takes them
  if (failed && recorded && !ses.historyFinal && ses.writer) {
    await writeHistory(ses.layout, historyUpTo(state, ses.savedEpochs ?? 0), { html: true }).catch(() => {});
  }
  ses.reserve?.release();
  ses.lock.release();
  await ses.engine?.sync().catch(() => {});
  await reportWeights(ses);
  disposeSession(ses);
  if (exit === EXIT.done && recorded && !error && !failed) {
    const best = state.best.val_loss === null ? "-" : fmtLoss(state.best.val_loss);
    log.info(
      `done: ${state.epoch} epochs, best validation loss ${best} (epoch ${state.best.epoch}); ${ses.layout.dir} ` +
        `(${((performance.now() - t0) / 1000).toFixed(0)} s this session)`,
    );
  }
  log.close();
  if (error) throw error;
}

/**
 * How a failed session ended, told where the user looks: the error line with the exit status in `train.log` (the
 * console gets it from the tool's entry), and the session's record in `loss_history.json`. The space reserve is
 * given back first, so that both fit on a disk that filled.
 */
function lastWords(ses: Session, e: unknown, history: boolean): void {
  ses.reserve?.release();
  const { line, code } = describeError(e);
  try {
    ses.log.recordLast(`error: ${line} (exit status ${code})`);
  } catch {
    // the log cannot be written: the console still says it
  }
  if (!history || !ses.writer || ses.historyFinal) return;
  try {
    // only the epochs a checkpoint holds (an epoch whose save failed is not the run's)
    writeHistoryJsonSync(ses.layout, historyUpTo(ses.state, ses.savedEpochs ?? 0));
  } catch {
    // the first error is the one reported
  }
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

/**
 * True while a session has changed nothing of the run: no step trained and no epoch closed. (A session resumed
 * after the last batch of an epoch closes that epoch, validation and checkpoint included, without a step.)
 */
function idle(ses: Session): boolean {
  return ses.state.global_step === ses.startStep && ses.record.last_epoch === null;
}

/** Takes this session's record out of the run's history (it changed nothing). */
function dropRecord(ses: Session): void {
  const i = ses.state.history.sessions.indexOf(ses.record);
  if (i >= 0) ses.state.history.sessions.splice(i, 1);
}

/** Repairs what earlier sessions left unwritten, and says so (see `reconcile.ts`). */
async function repair(ses: Session, ckpt: Checkpoint): Promise<void> {
  const r = await reconcileRun({
    layout: ses.layout,
    checkpoint: ckpt,
    state: ses.state,
    staleLock: ses.previousLock,
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

/** `config.json`: every setting, where the checkpoints are, the model, the normalisation and the data. */
async function writeConfig(ses: Session): Promise<void> {
  const { s, layout, ds } = ses;
  const config = {
    settings: ses.state.config,
    checkpoint_dir: s.run.checkpointDir ? await absolute(layout.checkpointDir) : null,
    gino_config: ses.model.config,
    normalization: ds.normalization,
    data_fingerprint: ds.fingerprint,
    data_dir: patchDir(s),
  };
  await writeTextFileAtomic(layout.config, JSON.stringify(config, null, 1) + "\n");
}

/**
 * Where a session's run lives: the folder of the resumed run (its checkpoints where they are), or
 * `<results-dir>/<run-name>` for a new one.
 */
function layoutFor(
  s: TrainSettings,
  explicit: Set<string>,
  resumed: Checkpoint | undefined,
  runName: string,
): RunLayout {
  const custom = s.run.checkpointDir;
  const given = explicit.has("run.checkpointDir");
  if (!resumed) return runLayout(`${s.run.resultsDir}/${runName}`, custom);
  const inside = runFolderOf(resumed.path);
  if (inside) return runLayout(inside, given ? custom : undefined);
  // a checkpoint kept elsewhere (--checkpoint-dir): the run folder is in the results folder
  const dir = `${s.run.resultsDir}/${runName}`;
  if (given) return runLayout(dir, custom);
  return runLayout(dir, resumed.path.slice(0, resumed.path.lastIndexOf("/")) || ".");
}

/**
 * The resume plan all ranks follow: rank 0 finds the checkpoint and merges the settings (see `resume.ts`), and
 * sends the checkpoint's path, the settings and the run name to the others, which load that checkpoint.
 */
async function agreedPlan(
  world: World,
  settings: TrainSettings,
  explicit: Set<string>,
  options: ResumeOptions,
  log: RunLog,
  startedAt: Date,
): Promise<{ checkpoint?: Checkpoint; settings: TrainSettings; runName: string }> {
  if (world.rank === 0) {
    const plan = await planResume(settings, explicit, options, log);
    const runName = plan.checkpoint?.state.run_name ?? plan.settings.run.runName ?? defaultRunName(startedAt);
    const imported = plan.checkpoint?.state.data_fingerprint === IMPORTED;
    const name = imported ? plan.settings.run.runName ?? defaultRunName(startedAt) : runName;
    await bcastString(
      world,
      JSON.stringify({ path: plan.checkpoint?.path, settings: plan.settings, runName: name }),
    );
    return { ...plan, runName: name };
  }
  const got = JSON.parse(await bcastString(world, ""));
  return {
    checkpoint: got.path ? await loadCheckpoint(got.path) : undefined,
    settings: got.settings,
    runName: got.runName,
  };
}

/** Every rank must train on the same data: their data fingerprints must equal rank 0's. */
async function agreeOnData(world: World, fingerprint: string): Promise<void> {
  if (world.size === 1) return;
  const first = await bcastString(world, fingerprint);
  if (!(await allAgree(world, first === fingerprint))) {
    const e = new DataError(
      first === fingerprint
        ? "the ranks of this job loaded different data (another rank's data fingerprint differs from rank 0's); " +
          "every rank must read the same --base-data-dir (on a file system all nodes share)"
        : `rank ${world.rank} loaded other data than rank 0 (data fingerprint ${fingerprint}, rank 0: ${first}); ` +
          "every rank must read the same --base-data-dir (on a file system all nodes share)",
    );
    e.everyRank = true;
    e.silent = first === fingerprint && world.rank > 0;
    throw e;
  }
}

/** The data-parallel layout, once: ranks, nodes, threads, how batches are shared out (and idle ranks, if any). */
function describeLayout(p: SessionParts, threads: number | undefined, log: RunLog): void {
  const w = p.world, b = p.s.data.batchSize, parts = Math.ceil(b / p.micro);
  log.info(
    `data-parallel: ${w.size} ranks on ${w.nodes} node(s), ${w.description}, ${threads ?? "default"} BLAS ` +
      `thread(s) per rank; each batch of ${b} windows is cut into ${parts} micro-batch(es) of up to ${p.micro}, ` +
      `shared out over the ranks, and the gradients are summed in one all-reduce per step`,
  );
  if (parts < w.size) {
    log.warn(
      `warning: a batch makes only ${parts} micro-batch(es) for ${w.size} ranks: ${
        w.size - parts
      } rank(s) idle ` +
        `at every step; raise --batch-size or lower --micro-batch (to ${Math.ceil(b / w.size)} or less)`,
    );
  }
}

/** Test hook: GINO_GW_TEST_RANK_REPORT=1 prints each rank's SHA-256 of its final weights (they must be equal). */
async function reportWeights(ses: Session): Promise<void> {
  if (!Deno.env.get("GINO_GW_TEST_RANK_REPORT")) return;
  const parts = Object.values(await ses.model.readTorchStateDict()).map((t) => new Uint8Array(t.data.buffer));
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  const hex = Array.from(
    new Uint8Array(await crypto.subtle.digest("SHA-256", all)),
    (b) => b.toString(16).padStart(2, "0"),
  );
  console.error(`rank ${ses.world.rank} weights sha256 ${hex.join("")}`);
}

async function absolute(path: string): Promise<string> {
  return path.startsWith("/") ? path : await Deno.realPath(path);
}
