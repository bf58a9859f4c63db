/**
 * A run's record of its epochs and sessions, derived from the training state that every checkpoint carries:
 * `loss_history.json`, the curves, one `metrics.jsonl` line and one `train.log` line per epoch. Because all of it can
 * be rebuilt from a checkpoint, a resume repairs what a killed session left unwritten (see `reconcile.ts`).
 *
 * @module
 */

import { writeTextFileAtomic, writeTextFileAtomicSync } from "../io/atomic.ts";
import type { SessionRecord, TrainingState } from "./checkpoint.ts";
import type { RunLayout } from "./layout.ts";
import { writeCurves } from "../plot/curves.ts";
import { checkpointNames } from "./policy.ts";
import type { PolicySettings } from "./policy.ts";

/** What one epoch's `metrics.jsonl` line holds. */
export interface EpochRecord {
  /** 1-based epoch. */
  epoch: number;
  /** Mean training loss of the epoch (relative L2, mean over windows). */
  train_loss: number;
  /** Validation loss after the epoch. */
  val_loss: number;
  /** Learning rate used during the epoch (absent for epochs of checkpoints that did not record it). */
  lr?: number;
  /** Training time of the epoch, seconds (validation included; gaps between sessions not). */
  epoch_seconds: number;
  /** Training windows per second. */
  samples_per_s: number;
  /** True when the epoch set a new best validation loss. */
  best: boolean;
  /** When the epoch ended (ISO), if recorded. */
  time?: string;
  /** Checkpoint files that hold the state after this epoch (per the checkpoint policy at the time). */
  checkpoints: string[];
  /** Per-column validation loss, as `val_loss_<column>`. */
  [column: `val_loss_${string}`]: number;
  /** Set on a line written at a resume because the session that trained the epoch was killed before writing it. */
  rebuilt?: boolean;
}

/** Records the end of an epoch in the state's history (before the state is saved). */
export function recordEpoch(
  state: TrainingState,
  r: { train: number; val: number; perColumn: Record<string, number>; lr: number; seconds: number },
): void {
  const h = state.history;
  const i = h.train_losses.length;
  h.train_losses.push(r.train);
  h.val_losses.push(r.val);
  h.epoch_seconds.push(r.seconds);
  (h.lrs ??= [])[i] = r.lr;
  (h.epoch_ends ??= [])[i] = new Date().toISOString();
  h.val_columns ??= {};
  for (const [c, v] of Object.entries(r.perColumn)) (h.val_columns[c] ??= [])[i] = v;
}

/** The record of epoch `epoch` (1-based) from a state's history. */
export function epochRecord(
  state: TrainingState,
  epoch: number,
  trainingWindows: number,
  policy: PolicySettings,
): EpochRecord {
  const h = state.history, i = epoch - 1;
  const seconds = h.epoch_seconds[i];
  // best so far and epochs without improvement, as they were at the end of this epoch
  let bestIdx = -1;
  for (let k = 0; k <= i; k++) {
    if (bestIdx < 0 || h.val_losses[k] < h.val_losses[bestIdx]) bestIdx = k;
  }
  const best = bestIdx === i;
  const rec: EpochRecord = {
    epoch,
    train_loss: h.train_losses[i],
    val_loss: h.val_losses[i],
    ...(h.lrs?.[i] !== undefined ? { lr: h.lrs[i] } : {}),
    epoch_seconds: seconds,
    samples_per_s: trainingWindows / Math.max(seconds, 1e-9),
    best,
    ...(h.epoch_ends?.[i] ? { time: h.epoch_ends[i] } : {}),
    checkpoints: checkpointNames({
      ...state,
      epoch,
      step_in_epoch: 0,
      best: { val_loss: h.val_losses[bestIdx], epoch: bestIdx + 1 },
      early_stopping: { bad_epochs: i - bestIdx },
    }, policy),
  };
  for (const [c, vals] of Object.entries(h.val_columns ?? {})) {
    if (vals[i] !== undefined) rec[`val_loss_${c}`] = vals[i];
  }
  return rec;
}

const fmtLoss = (v: number) => (Number.isFinite(v) ? v.toFixed(6) : String(v));

/** The `train.log` line of an epoch. */
export function epochLogLine(rec: EpochRecord, epochs: number): string {
  const cols = Object.keys(rec).filter((k) => k.startsWith("val_loss_"));
  return `epoch ${rec.epoch}/${epochs}  train ${fmtLoss(rec.train_loss)}  val ${fmtLoss(rec.val_loss)}` +
    (cols.length > 1
      ? ` (${cols.map((k) => `${k.slice(9)} ${fmtLoss(rec[k as `val_loss_${string}`])}`).join(", ")})`
      : "") +
    (rec.lr !== undefined ? `  lr ${rec.lr.toExponential(2)}` : "") +
    `  ${rec.epoch_seconds.toFixed(1)} s  ${rec.samples_per_s.toFixed(1)} samples/s` +
    (rec.best ? "  (best)" : "") + `  saved ${rec.checkpoints.join(", ")}`;
}

/** Training seconds of a run: the sum of its epochs' times (the gaps between sessions do not count). */
export function trainingSeconds(state: TrainingState): number {
  return state.history.epoch_seconds.reduce((a, b) => a + b, 0) + (state.partial_epoch?.seconds ?? 0);
}

/** The text of `loss_history.json` for a state. */
function historyJson(state: TrainingState): string {
  const h = state.history;
  return JSON.stringify(
    {
      train_losses: h.train_losses,
      val_losses: h.val_losses,
      epoch_seconds: h.epoch_seconds,
      ...(h.lrs ? { lrs: h.lrs } : {}),
      ...(h.epoch_ends ? { epoch_ends: h.epoch_ends } : {}),
      ...(h.val_columns ? { val_losses_by_column: h.val_columns } : {}),
      total_epochs: h.train_losses.length,
      training_seconds: trainingSeconds(state),
      best: state.best,
      last_updated: new Date().toISOString(),
      sessions: h.sessions,
    },
    null,
    1,
  ) + "\n";
}

/** Writes `loss_history.json` and the curves from the state (`html`: the 4-5 MB HTML page as well). */
export async function writeHistory(
  layout: RunLayout,
  state: TrainingState,
  options: { html?: boolean } = {},
): Promise<void> {
  const h = state.history;
  const resumes: number[] = [];
  h.sessions.forEach((sess, i) => {
    if (i > 0 && sess.first_epoch !== null) resumes.push(sess.first_epoch);
  });
  await writeTextFileAtomic(layout.history, historyJson(state));
  await writeCurves(layout.dir, {
    run: state.run_name,
    train: h.train_losses,
    val: h.val_losses,
    lr: h.lrs,
    resumes: [...new Set(resumes)],
    sessions: h.sessions.length,
    wallSeconds: trainingSeconds(state),
  }, options);
}

/** Writes `loss_history.json` alone, synchronously (for an exit that cannot wait). */
export function writeHistoryJsonSync(layout: RunLayout, state: TrainingState): void {
  writeTextFileAtomicSync(layout.history, historyJson(state));
}

/**
 * The state with its history cut back to its first `epochs` epochs, sessions kept (for a session that failed
 * before a checkpoint held its last epochs: the history on disk claims no epoch that no checkpoint holds).
 */
export function historyUpTo(state: TrainingState, epochs: number): TrainingState {
  const h = state.history;
  if (h.train_losses.length <= epochs) return state;
  const cut = <T>(a: T[] | undefined) => a?.slice(0, epochs);
  const val = h.val_losses.slice(0, epochs);
  let best: TrainingState["best"] = { val_loss: null, epoch: null };
  val.forEach((v, i) => {
    if (best.val_loss === null || v < best.val_loss) best = { val_loss: v, epoch: i + 1 };
  });
  return {
    ...state,
    epoch: Math.min(state.epoch, epochs),
    best,
    history: {
      ...h,
      train_losses: h.train_losses.slice(0, epochs),
      val_losses: val,
      epoch_seconds: h.epoch_seconds.slice(0, epochs),
      lrs: cut(h.lrs),
      epoch_ends: cut(h.epoch_ends),
      val_columns: h.val_columns
        ? Object.fromEntries(Object.entries(h.val_columns).map(([k, v]) => [k, v.slice(0, epochs)]))
        : undefined,
    },
  };
}

/** The sessions recorded in a run's `loss_history.json` (empty when it is missing or unreadable). */
export async function readRecordedSessions(layout: RunLayout): Promise<SessionRecord[]> {
  try {
    const h = JSON.parse(await Deno.readTextFile(layout.history));
    return Array.isArray(h?.sessions) ? h.sessions : [];
  } catch {
    return [];
  }
}

/** The exit text of a session that ended without a record: killed (SIGKILL, out of memory, node failure). */
export const KILLED = "killed: no clean exit (its end is its last sign of life)";

/**
 * Gives every session of `state` that has no end its true record: the one `loss_history.json` kept (a session that
 * ended after its last checkpoint, e.g. on a NaN loss), or else `killed`, ending at its last sign of life
 * (`lastAlive(session)`: the run lock's heartbeat, or the state's save time). A session the checkpoint holds as
 * closed but the history records as failed (its last save met a full disk) takes the history's record. Returns the
 * sessions closed as killed.
 */
export function closeSessions(
  state: TrainingState,
  recorded: SessionRecord[],
  lastAlive: (s: SessionRecord) => string,
): SessionRecord[] {
  const killed: SessionRecord[] = [];
  for (const s of state.history.sessions) {
    const r = recorded.find((x) => x.start === s.start && x.host === s.host && x.end !== null);
    if (s.end !== null) {
      // closed before its last checkpoint, then failed writing it (a full disk): the history has the truth
      if (r && r.exit_status !== s.exit_status && /^failed: /.test(r.exit ?? "")) {
        Object.assign(s, { end: r.end, exit: r.exit, exit_status: r.exit_status ?? null });
      }
      continue;
    }
    if (r) {
      s.end = r.end;
      s.exit = r.exit;
      s.exit_status = r.exit_status ?? null;
    } else {
      s.end = lastAlive(s);
      s.exit = KILLED;
      s.exit_status = null;
      killed.push(s);
    }
  }
  return killed;
}
