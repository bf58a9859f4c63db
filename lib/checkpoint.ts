/**
 * Checkpoints: one safetensors file holding the model weights (`model.<reference name>`, PyTorch layout), the
 * optimiser moments (`optim.<reference name>.exp_avg` / `.exp_avg_sq`, same layout) and, in the header metadata,
 * the JSON training state and a SHA-256 of the tensor bytes, checked on load. Written atomically (temporary file in
 * the same folder, fsync, rename): a kill at any moment leaves the previous checkpoint intact.
 *
 * @module
 */

import { decodeSafetensors, encodeSafetensors, SafetensorsError } from "./safetensors.ts";
import type { SafetensorsFile } from "./safetensors.ts";
import { writeFileAtomic } from "./atomic.ts";
import type { Gino } from "./gino/model.ts";
import { fromTorch, toTorch } from "./gino/model.ts";
import type { Adam, AdamState } from "./adam.ts";
import type { SamplerState } from "./sampler.ts";
import type { Normalization } from "./dataset.ts";
import type { GinoConfig } from "./gino/config.ts";

/** The format tag written into every checkpoint. */
export const CHECKPOINT_FORMAT = "gino-gw checkpoint v1";

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
  /** How the session ended. */
  exit: string | null;
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
  scheduler: { lr: number; base_lr: number; gamma: number; interval: number };
  /** Optimiser scalar state (moments are tensors). */
  adam: AdamState;
  /** Batch sampler state (also mid-epoch). */
  sampler: SamplerState;
  /** Losses of every epoch and the sessions. */
  history: {
    train_losses: number[];
    val_losses: number[];
    epoch_seconds: number[];
    sessions: SessionRecord[];
  };
  /** Best validation loss and its epoch. */
  best: { val_loss: number | null; epoch: number | null };
  /** Epochs without improvement so far. */
  early_stopping: { bad_epochs: number };
  /** Every setting of the run. */
  config: Record<string, unknown>;
  /** The model configuration. */
  gino_config: GinoConfig;
  /** Normalisation statistics. */
  normalization: Normalization;
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
export class CheckpointError extends Error {
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

/** The checkpoint's tensors: model weights and optimiser moments, in PyTorch layout. */
export function checkpointTensors(
  model: Gino,
  adam?: Adam,
): Record<string, { shape: number[]; data: Float32Array }> {
  const out: Record<string, { shape: number[]; data: Float32Array }> = {};
  for (const [k, t] of Object.entries(model.toTorchStateDict())) {
    out[`model.${k}`] = { shape: t.shape, data: t.data };
  }
  if (adam) {
    let i = 0;
    for (const p of model.params) {
      const n = p.vars.length;
      const m = adam.m.slice(i, i + n).map((t) => t.dataSync() as Float32Array);
      const v = adam.v.slice(i, i + n).map((t) => t.dataSync() as Float32Array);
      out[`optim.${p.name}.exp_avg`] = { shape: p.torchShape, data: toTorch(p, m) };
      out[`optim.${p.name}.exp_avg_sq`] = { shape: p.torchShape, data: toTorch(p, v) };
      i += n;
    }
  }
  return out;
}

/** Encodes a checkpoint (tensors + state with the SHA-256 of the tensor bytes). */
export async function encodeCheckpoint(
  tensors: Record<string, { shape: number[]; data: Float32Array }>,
  state: TrainingState,
): Promise<Uint8Array> {
  const parts = Object.values(tensors);
  const total = parts.reduce((s, t) => s + t.data.byteLength, 0);
  const data = new Uint8Array(total);
  let at = 0;
  for (const t of parts) {
    data.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), at);
    at += t.data.byteLength;
  }
  const sha = await sha256Hex(data);
  return encodeSafetensors(tensors, {
    format: CHECKPOINT_FORMAT,
    sha256: sha,
    training_state: JSON.stringify(state),
  });
}

/** Writes a checkpoint atomically. */
export async function saveCheckpoint(
  path: string,
  model: Gino,
  adam: Adam,
  state: TrainingState,
): Promise<number> {
  const bytes = await encodeCheckpoint(checkpointTensors(model, adam), state);
  await writeFileAtomic(path, bytes);
  return bytes.length;
}

/** Result of {@linkcode verifyCheckpointBytes}. */
export interface VerifyResult {
  /** Ok. */
  ok: boolean;
  /** Problems. */
  problems: string[];
  /** File. */
  file?: SafetensorsFile;
  /** State. */
  state?: TrainingState;
  /** Sha256. */
  sha256?: string;
}

/** Checks header, sizes and SHA-256 of checkpoint bytes. */
export async function verifyCheckpointBytes(bytes: Uint8Array, name: string): Promise<VerifyResult> {
  let file: SafetensorsFile;
  try {
    file = decodeSafetensors(bytes, name);
  } catch (e) {
    return { ok: false, problems: [(e as Error).message] };
  }
  const problems: string[] = [];
  if (file.metadata.format !== CHECKPOINT_FORMAT) {
    problems.push(`${name}: not a gino-gw checkpoint (format '${file.metadata.format ?? "none"}')`);
  }
  let state: TrainingState | undefined;
  try {
    state = JSON.parse(file.metadata.training_state ?? "");
  } catch {
    problems.push(`${name}: the training state in the header is missing or not valid JSON`);
  }
  const headerLen = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  const sha = await sha256Hex(bytes.subarray(8 + headerLen));
  if (file.metadata.sha256 && sha !== file.metadata.sha256) {
    problems.push(`${name}: SHA-256 of the tensor data does not match the header (file corrupted)`);
  } else if (!file.metadata.sha256) problems.push(`${name}: no SHA-256 in the header`);
  return { ok: problems.length === 0, problems, file, state, sha256: sha };
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
    throw new CheckpointError(`${ckpt.path}: ${(e as Error).message}`);
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
