/**
 * Checkpoints: one safetensors file holding the model weights (`model.<reference name>`, PyTorch layout), the
 * optimiser moments (`optim.<reference name>.exp_avg` / `.exp_avg_sq`, same layout) and, in the header metadata,
 * the JSON training state and a SHA-256 of the whole file (header included: computed with the 64 hex digits of the
 * hash itself set to `0`), checked on load, so any changed byte anywhere is caught. Written atomically (temporary
 * file in the same folder, fsync, rename): a kill at any moment leaves the previous checkpoint intact.
 *
 * Files of the first format (`gino-gw checkpoint v1`, whose hash covers the tensor bytes only) still load.
 *
 * @module
 */

import { ToolError, withPath } from "../errors.ts";
import { settingsFromSaved } from "./settings.ts";
import type { TrainSettings } from "./settings.ts";
import { decodeSafetensors, encodeSafetensors, SafetensorsError } from "../io/safetensors.ts";
import type { SafetensorsFile } from "../io/safetensors.ts";
import { writeFileAtomic } from "../io/atomic.ts";
import type { Gino } from "../model/gino.ts";
import { fromTorch, toTorch } from "../model/gino.ts";
import type { Adam, AdamState } from "./adam.ts";
import type { SamplerState } from "../data/sampler.ts";
import type { Normalization } from "../data/dataset.ts";
import type { GinoConfig } from "../model/config.ts";
import type { ScheduleState } from "./schedule.ts";

/** The format tag written into every checkpoint (file and training state). */
export const CHECKPOINT_FORMAT = "gino-gw checkpoint v2";

/** The first format: its SHA-256 (metadata `sha256`) covers the tensor bytes only. Still read. */
export const CHECKPOINT_FORMAT_V1 = "gino-gw checkpoint v1";

/** Formats this version reads. */
export const CHECKPOINT_FORMATS = [CHECKPOINT_FORMAT_V1, CHECKPOINT_FORMAT] as const;

/** Metadata key of the whole-file SHA-256. */
const FILE_SHA = "file_sha256";
const PLACEHOLDER = "0".repeat(64);

/** The data fingerprint of a checkpoint imported from PyTorch weights: the first training run adopts its data. */
export const IMPORTED = "imported";

/** One session of a run (a start, or a resume). */
export interface SessionRecord {
  /** Session start (ISO time). */
  start: string;
  /** Session end (ISO time), null while running or after a crash. */
  end: string | null;
  /** First epoch trained in the session. */
  first_epoch: number | null;
  /** Last epoch completed in the session. */
  last_epoch: number | null;
  /** Checkpoint the session resumed from. */
  resumed_from: string | null;
  /** Host name. */
  host: string;
  /** Compute backend used. */
  backend: string;
  /** How the session ended (null while it runs). */
  exit: string | null;
  /** Its exit status (0 done, 3 stopped, 4 diverged, 1 internal error); null while running or when killed. */
  exit_status?: number | null;
  /** The scheduler job it ran in (the job scripts say), if any. */
  job?: string | null;
  /** The chain of jobs it belongs to: the first job's id (the job scripts say), if any. */
  chain?: string | null;
}

/** Everything besides tensors that a resume needs. */
export interface TrainingState {
  /** Format tag of the checkpoint. */
  format: string;
  /** Epochs completed. */
  epoch: number;
  /** Batches of epoch `epoch + 1` already trained (0 at an epoch boundary). */
  step_in_epoch: number;
  /** Sum of loss x batch size and the sample count of the partial epoch (exact epoch losses after a resume). */
  partial_epoch: { loss_sum: number; samples: number; seconds: number };
  /** Batches trained over the whole run. */
  global_step: number;
  /** Learning-rate schedule state. */
  scheduler: ScheduleState;
  /** Optimiser scalar state (moments are tensors). */
  adam: AdamState;
  /** Batch sampler state (also mid-epoch). */
  sampler: SamplerState;
  /** Losses of every epoch and the sessions. */
  history: {
    /** Mean training loss of each epoch. */
    train_losses: number[];
    /** Validation loss after each epoch. */
    val_losses: number[];
    /** Training seconds of each epoch (validation included). */
    epoch_seconds: number[];
    /** Learning rate used in each epoch (checkpoints of the first format lack it). */
    lrs?: number[];
    /** When each epoch ended, ISO (checkpoints of the first format lack it). */
    epoch_ends?: string[];
    /** Validation loss of each epoch per target column (checkpoints of the first format lack it). */
    val_columns?: Record<string, number[]>;
    /** The sessions that trained this run, oldest first. */
    sessions: SessionRecord[];
  };
  /** Best validation loss and its epoch. */
  best: { val_loss: number | null; epoch: number | null };
  /** Epochs without improvement so far. */
  early_stopping: { bad_epochs: number };
  /** Every setting of the run (the first format saved them by flag name: read with `settingsFromSaved`). */
  config: TrainSettings;
  /** The model configuration. */
  gino_config: GinoConfig;
  /** Normalisation statistics. */
  normalization: Normalization;
  /** With `--residual-base fitted`: the fitted base's weights `[C][Tin + 1][Tout]` flat (see `base_fit.ts`). */
  residual_fit?: number[];
  /** Hash of the training data. */
  data_fingerprint: string;
  /** Name of the run folder. */
  run_name: string;
  /** When the checkpoint was written (ISO time). */
  saved_at: string;
}

/** A loaded checkpoint. */
export interface Checkpoint {
  /** The file. */
  path: string;
  /** The training state. */
  state: TrainingState;
  /** The decoded safetensors file. */
  file: SafetensorsFile;
}

/** A checkpoint that cannot be used; the message names the file and what is wrong. */
export class CheckpointError extends ToolError {
  /** An error with the given message. */
  constructor(message: string) {
    super(message);
    this.name = "CheckpointError";
  }
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>));
  return Array.from(d, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The checkpoint's tensors: model weights and optimiser moments, in PyTorch layout (read asynchronously). */
export async function checkpointTensors(
  model: Gino,
  adam?: Adam,
): Promise<Record<string, { shape: number[]; data: Float32Array }>> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [k, t] of Object.entries(await model.readTorchStateDict())) {
    out[`model.${k}`] = { shape: t.shape, data: t.data };
  }
  if (adam) {
    let i = 0;
    for (const p of model.params) {
      const n = p.vars.length;
      const m = await Promise.all(adam.m.slice(i, i + n).map(async (t) => await t.data() as Float32Array));
      const v = await Promise.all(adam.v.slice(i, i + n).map(async (t) => await t.data() as Float32Array));
      out[`optim.${p.name}.exp_avg`] = { shape: p.torchShape, data: toTorch(p, m) };
      out[`optim.${p.name}.exp_avg_sq`] = { shape: p.torchShape, data: toTorch(p, v) };
      i += n;
    }
  }
  return out;
}

/**
 * Encodes a checkpoint: tensors, the training state and the SHA-256 of the whole file (computed with the hash's own
 * 64 hex digits set to `0`, then written in their place).
 */
export async function encodeCheckpoint(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  state: TrainingState,
): Promise<Uint8Array> {
  const bytes = encodeSafetensors(tensors, {
    format: CHECKPOINT_FORMAT,
    training_state: JSON.stringify(state),
    [FILE_SHA]: PLACEHOLDER,
  });
  const at = hashField(bytes, PLACEHOLDER);
  if (at < 0) throw new Error("internal: the checkpoint hash field was not found in the encoded header");
  const sha = await sha256Hex(bytes);
  bytes.set(new TextEncoder().encode(sha), at);
  return bytes;
}

/**
 * Byte offset of the 64 hex digits of `"file_sha256":"<hex>"` in the header, or -1 when that text is not there
 * exactly once. Quotes inside JSON strings are escaped, so the key cannot be matched inside the training state.
 */
function hashField(bytes: Uint8Array, hex: string): number {
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const header = new TextDecoder().decode(bytes.subarray(8, 8 + headerLen));
  const needle = `"${FILE_SHA}":"${hex}"`;
  const i = header.indexOf(needle);
  if (i < 0 || header.indexOf(needle, i + 1) >= 0) return -1;
  // the header is ASCII up to here unless a tensor name is not: count bytes, not characters
  return 8 + new TextEncoder().encode(header.slice(0, i)).length + FILE_SHA.length + 4;
}

/** Writes a checkpoint atomically. */
export async function saveCheckpoint(
  path: string,
  model: Gino,
  adam: Adam,
  state: TrainingState,
): Promise<number> {
  const bytes = await encodeCheckpoint(await checkpointTensors(model, adam), state);
  await writeFileAtomic(path, bytes);
  return bytes.length;
}

/** Result of {@linkcode verifyCheckpointBytes}. */
export interface VerifyResult {
  /** True when the file is an intact checkpoint of a format this version reads. */
  ok: boolean;
  /** What is wrong, one sentence each, naming the file. */
  problems: string[];
  /** The decoded file (when the safetensors structure is readable). */
  file?: SafetensorsFile;
  /** The training state (when the header holds valid JSON). */
  state?: TrainingState;
  /** The SHA-256 recomputed from the bytes: of the whole file (v2) or of the tensor data (v1). */
  sha256?: string;
  /** The checkpoint format (metadata `format`). */
  format?: string;
}

/**
 * Checks a checkpoint's bytes: safetensors structure, format, training state, and the SHA-256 (v2: of the whole
 * file, so a changed byte anywhere fails; v1: of the tensor data). The bytes are left as they were.
 */
export async function verifyCheckpointBytes(bytes: Uint8Array, name: string): Promise<VerifyResult> {
  let file: SafetensorsFile;
  try {
    file = decodeSafetensors(bytes, name);
  } catch (e) {
    return { ok: false, problems: [(e as Error).message] };
  }
  const problems: string[] = [];
  const format = file.metadata.format;
  if (!(CHECKPOINT_FORMATS as readonly string[]).includes(format)) {
    problems.push(`${name}: not a gino-gw checkpoint of a known format (format '${format ?? "none"}')`);
  }
  let sha: string | undefined;
  if (format === CHECKPOINT_FORMAT_V1) {
    const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
    sha = await sha256Hex(bytes.subarray(8 + headerLen));
    if (!file.metadata.sha256) problems.push(`${name}: no SHA-256 in the header`);
    else if (sha !== file.metadata.sha256) {
      problems.push(`${name}: SHA-256 of the tensor data does not match the header (file corrupted)`);
    }
  } else if (format === CHECKPOINT_FORMAT) {
    const claimed = file.metadata[FILE_SHA] ?? "";
    const at = /^[0-9a-f]{64}$/.test(claimed) ? hashField(bytes, claimed) : -1;
    if (at < 0) problems.push(`${name}: the header's SHA-256 field is missing or damaged (file corrupted)`);
    else {
      const kept = bytes.slice(at, at + 64);
      bytes.fill(0x30, at, at + 64); // "0" x 64, as when the hash was computed
      try {
        sha = await sha256Hex(bytes);
      } finally {
        bytes.set(kept, at);
      }
      if (sha !== claimed) {
        problems.push(`${name}: SHA-256 of the file does not match the header (file corrupted)`);
      }
    }
  }
  let state: TrainingState | undefined;
  try {
    state = JSON.parse(file.metadata.training_state ?? "");
  } catch {
    problems.push(`${name}: the training state in the header is missing or not valid JSON`);
  }
  if (state && problems.length === 0) {
    const bad = stateProblem(state);
    if (bad) problems.push(`${name}: the training state is not usable (${bad})`);
    else state.config = settingsFromSaved(state.config);
  }
  return { ok: problems.length === 0, problems, file, state, sha256: sha, format };
}

/** A first check of a training state's shape (what a resume reads before anything else); undefined when fine. */
function stateProblem(s: TrainingState): string | undefined {
  const isCount = (v: unknown) => Number.isInteger(v) && Number(v) >= 0;
  if (typeof s !== "object" || s === null) return "not an object";
  if (!isCount(s.epoch)) return `epoch ${JSON.stringify(s.epoch)}`;
  if (!isCount(s.step_in_epoch)) return `step_in_epoch ${JSON.stringify(s.step_in_epoch)}`;
  if (!s.history || !Array.isArray(s.history.train_losses) || !Array.isArray(s.history.sessions)) {
    return "history missing";
  }
  return undefined;
}

/** Reads and verifies a checkpoint; throws a {@linkcode CheckpointError} naming the file and the problem. */
export async function loadCheckpoint(path: string): Promise<Checkpoint> {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new CheckpointError(`checkpoint not found: ${path}`);
    throw e;
  }
  const v = await verifyCheckpointBytes(bytes, path);
  if (!v.ok) throw new CheckpointError(v.problems.join("; "));
  return { path, state: v.state!, file: v.file! };
}

/** Restores model weights (and optimiser moments when `adam` is given) from a loaded checkpoint. */
export function restoreTensors(ckpt: Checkpoint, model: Gino, adam?: Adam): void {
  const t = ckpt.file.tensors;
  const weights: Record<string, { dtype: string; shape: number[]; data: Float32Array }> = {};
  for (const [k, v] of Object.entries(t)) {
    if (k.startsWith("model.")) {
      weights[k.slice(6)] = v as { dtype: string; shape: number[]; data: Float32Array };
    }
  }
  try {
    model.loadTorchStateDict(weights);
  } catch (e) {
    throw new CheckpointError(withPath(ckpt.path, e));
  }
  if (!adam) return;
  const m: Float32Array[] = [], v: Float32Array[] = [];
  for (const p of model.params) {
    const a = t[`optim.${p.name}.exp_avg`], b = t[`optim.${p.name}.exp_avg_sq`];
    if (!a || !b) throw new CheckpointError(`${ckpt.path}: optimiser moments of ${p.name} are missing`);
    m.push(...fromTorch(p, a.data as Float32Array));
    v.push(...fromTorch(p, b.data as Float32Array));
  }
  adam.setState(ckpt.state.adam, m, v);
}

export { SafetensorsError };
