/**
 * Making a run folder tell the truth again before a resumed session trains: a kill can strike between any two
 * writes, so the checkpoint a resume starts from (the furthest intact one) is taken as the truth, and everything
 * derived from it is brought in line:
 *
 * - checkpoint files: `latest`, `best`, `final` and the epoch file of the resume point hold what the checkpoint
 *   policy says (restored by copying the bytes of a checkpoint of the same save);
 * - session records: sessions that never closed get the end `loss_history.json` kept, or are marked killed;
 * - `metrics.jsonl`: each epoch up to the resume point once (missing lines rebuilt, lines of epochs that will be
 *   trained again dropped); `train.log`: a line for every epoch;
 * - temporary files of killed writes are removed.
 *
 * @module
 */

import { verifyCheckpointBytes } from "./checkpoint.ts";
import type { Checkpoint, SessionRecord, TrainingState } from "./checkpoint.ts";
import { writeFileAtomic, writeTextFileAtomic } from "../io/atomic.ts";
import { BEST, epochCheckpointName } from "./layout.ts";
import type { RunLayout } from "./layout.ts";
import { checkpointNames, savedPolicy } from "./policy.ts";
import { closeSessions, epochLogLine, epochRecord, readRecordedSessions } from "./history.ts";
import type { EpochRecord } from "./history.ts";
import { removeStaleTemporaries } from "./runlock.ts";
import type { RunLockInfo } from "./runlock.ts";

/** What {@linkcode reconcileRun} found and repaired. */
export interface ReconcileReport {
  /** Checkpoint files rewritten, with the reason. */
  restored: string[];
  /** Temporary files of killed writes removed. */
  temporaries: string[];
  /** Sessions found without an end and closed as killed. */
  killed: SessionRecord[];
  /** Epochs whose `metrics.jsonl` line was rebuilt. */
  metricsRebuilt: number[];
  /** Epochs whose `train.log` line was added. */
  logRebuilt: number[];
  /** Problems that could not be repaired. */
  warnings: string[];
}

/** Where and how a resume repairs a run. */
export interface ReconcileOptions {
  /** The run's files. */
  layout: RunLayout;
  /** The checkpoint the session resumes from, as it was saved. */
  checkpoint: Checkpoint;
  /** The session's training state (from that checkpoint): its session records are closed in place. */
  state: TrainingState;
  /** A run lock a previous session left behind (it did not end cleanly). */
  staleLock?: RunLockInfo;
  /** Training windows per epoch (for the samples/s of rebuilt lines). */
  trainingWindows: number;
  /** Appends a line to `train.log` only. */
  record: (line: string) => void;
}

async function readVerified(path: string): Promise<TrainingState | undefined> {
  try {
    const v = await verifyCheckpointBytes(await Deno.readFile(path), path);
    return v.ok ? v.state : undefined;
  } catch {
    return undefined;
  }
}

const sameLosses = (a: number[], b: number[]) =>
  a.length === b.length && a.every((v, i) => Object.is(v, b[i]));

/** True when `s` is the state of epoch `epoch` of the lineage `of` (same losses up to there). */
function isEpochOf(s: TrainingState | undefined, of: TrainingState, epoch: number): boolean {
  return !!s && s.epoch === epoch && s.step_in_epoch === 0 &&
    sameLosses(s.history.train_losses, of.history.train_losses.slice(0, epoch));
}

/** Restores the checkpoint files that must hold the resume state or the best epoch. */
async function restoreCheckpoints(o: ReconcileOptions, report: ReconcileReport): Promise<void> {
  const s = o.checkpoint.state, dir = o.layout.checkpointDir;
  let bytes: Uint8Array | undefined;
  const source = async () => (bytes ??= await Deno.readFile(o.checkpoint.path));
  for (const name of checkpointNames(s, savedPolicy(s))) {
    const path = `${dir}/${name}`;
    if (path === o.checkpoint.path) continue;
    const held = await readVerified(path);
    if (
      held && held.saved_at === s.saved_at && held.epoch === s.epoch && held.step_in_epoch === s.step_in_epoch
    ) {
      continue;
    }
    await writeFileAtomic(path, await source());
    report.restored.push(
      `${name} (epoch ${s.epoch}${s.step_in_epoch ? ` + ${s.step_in_epoch} batches` : ""})`,
    );
  }
  const b = s.best.epoch;
  if (b !== null && b < s.epoch && !isEpochOf(await readVerified(`${dir}/${BEST}`), s, b)) {
    const epochFile = `${dir}/${epochCheckpointName(b)}`;
    if (isEpochOf(await readVerified(epochFile), s, b)) {
      await writeFileAtomic(`${dir}/${BEST}`, await Deno.readFile(epochFile));
      report.restored.push(`${BEST} (epoch ${b}, from ${epochCheckpointName(b)})`);
    } else {
      report.warnings.push(
        `${dir}/${BEST} should hold epoch ${b} (the best validation loss) but is missing, damaged or of another ` +
          `epoch, and no checkpoint of epoch ${b} is kept to restore it from; it is rewritten when an epoch ` +
          `improves on ${s.best.val_loss}`,
      );
    }
  }
}

/** Keeps one `metrics.jsonl` line per epoch up to the resume point, rebuilding missing ones from the state. */
async function repairMetrics(o: ReconcileOptions, report: ReconcileReport): Promise<void> {
  const s = o.checkpoint.state;
  let text = "";
  try {
    text = await Deno.readTextFile(o.layout.metrics);
  } catch {
    // none yet
  }
  const lines = text.split("\n").filter((l) => l.trim() !== "");
  const kept = new Map<number, string>();
  let dropped = 0;
  for (const line of lines) {
    let rec: Partial<EpochRecord>;
    try {
      rec = JSON.parse(line);
    } catch {
      dropped++; // a line torn by a kill
      continue;
    }
    const e = rec.epoch;
    if (typeof e !== "number" || e > s.epoch || kept.has(e)) dropped++;
    else kept.set(e, line);
  }
  const out: string[] = [];
  for (let e = 1; e <= s.epoch; e++) {
    let line = kept.get(e);
    if (!line) {
      line = JSON.stringify({ ...epochRecord(s, e, o.trainingWindows, savedPolicy(s)), rebuilt: true });
      report.metricsRebuilt.push(e);
    }
    out.push(line);
  }
  if (dropped || report.metricsRebuilt.length) {
    await writeTextFileAtomic(o.layout.metrics, out.map((l) => l + "\n").join(""));
  }
}

/** Adds a `train.log` line for every epoch up to the resume point that has none. */
async function repairLog(o: ReconcileOptions, report: ReconcileReport): Promise<void> {
  const s = o.checkpoint.state;
  let text = "";
  try {
    text = await Deno.readTextFile(o.layout.log);
  } catch {
    // none yet
  }
  const logged = new Set<number>();
  for (const m of text.matchAll(/ epoch (\d+)\/\d+ {2}train /g)) logged.add(Number(m[1]));
  const policy = savedPolicy(s);
  for (let e = 1; e <= s.epoch; e++) {
    if (logged.has(e)) continue;
    o.record(
      `${epochLogLine(epochRecord(s, e, o.trainingWindows, policy), policy.epochs)}  ` +
        `(logged at a resume: the session that trained this epoch was killed before logging it)`,
    );
    report.logRebuilt.push(e);
  }
  const later = [...logged].filter((e) => e > s.epoch).sort((a, b) => a - b);
  if (later.length) {
    o.record(
      `note: epochs ${later[0]}-${later.at(-1)} logged above are trained again from ${o.checkpoint.path} ` +
        `(epoch ${s.epoch}): no intact checkpoint of them is left`,
    );
  }
}

/** Brings the run folder in line with the resume checkpoint (see the module documentation). */
export async function reconcileRun(o: ReconcileOptions): Promise<ReconcileReport> {
  const report: ReconcileReport = {
    restored: [],
    temporaries: await removeStaleTemporaries(o.layout),
    killed: [],
    metricsRebuilt: [],
    logRebuilt: [],
    warnings: [],
  };
  await restoreCheckpoints(o, report);
  const s = o.checkpoint.state;
  const lock = o.staleLock;
  report.killed = closeSessions(o.state, await readRecordedSessions(o.layout), (sess) => {
    const hb = lock && lock.start === sess.start ? lock.heartbeat ?? lock.start : undefined;
    return hb && hb > s.saved_at ? hb : s.saved_at;
  });
  await repairMetrics(o, report);
  await repairLog(o, report);
  return report;
}
