/**
 * The patch batch sampler: every batch holds windows of one patch only (so the patch's geometry, neighbour lists
 * and embeddings are shared by the whole batch).
 *
 * Each epoch, with `shuffleWithinBatches`, the window starts of every patch are shuffled before they are cut into
 * batches, so batches are re-formed every epoch; with `shufflePatches` the order of the batches is shuffled. The
 * sampler's state (RNG state at the start of the epoch, epoch number, position within the epoch) can be saved and
 * restored: a resumed run continues with exactly the batches it would have seen.
 *
 * @module
 */

import { Rng } from "./rng.ts";
import type { RngState } from "./rng.ts";

/** Options of {@linkcode PatchBatchSampler}. */
export interface SamplerOptions {
  /** Windows per batch (the last batch of a patch may be smaller). */
  batchSize: number;
  /** Re-form batches every epoch by shuffling each patch's windows before cutting them. Default true. */
  shuffleWithinBatches?: boolean;
  /** Shuffle the order of the batches every epoch. Default true. */
  shufflePatches?: boolean;
  /** Seed of the sampler's own RNG. Default 42. */
  seed?: number;
}

/** Saved state of a {@linkcode PatchBatchSampler}. */
export interface SamplerState {
  /** Epochs begun (1 during the first epoch). */
  epoch: number;
  /** Batches of the current epoch already handed out. */
  position: number;
  /** RNG state at the start of the current epoch (before its plan was drawn). */
  rngAtEpochStart: RngState;
  /** Windows per patch the state was made for (a resume on other data is refused). */
  counts: number[];
  /** Options the state was made with. */
  batchSize: number;
  /** Re-form batches every epoch. */
  shuffleWithinBatches: boolean;
  /** Shuffle the batch order every epoch. */
  shufflePatches: boolean;
}

/** One batch: a patch and the indices of its windows (0-based within the patch's part). */
export interface SampledBatch {
  /** Index of the patch in the dataset. */
  patch: number;
  /** Window indices, a view valid until the next epoch is planned. */
  windows: Int32Array;
}

/** Batches windows of one patch at a time; see the module documentation. */
export class PatchBatchSampler {
  /** Windows per patch. */
  readonly counts: Int32Array;
  /** Windows per batch. */
  readonly batchSize: number;
  /** Re-form batches every epoch. */
  readonly shuffleWithinBatches: boolean;
  /** Shuffle the batch order every epoch. */
  readonly shufflePatches: boolean;
  /** Windows in all patches. */
  readonly totalWindows: number;
  /** Batches in one epoch (each window once). */
  readonly batchesPerEpoch: number;
  #rng: Rng;
  #rngAtEpochStart: RngState;
  #epoch = 0;
  #position = 0;
  #offsets: Int32Array; // first slot of each patch in #order
  #order: Int32Array; // window indices, patch by patch
  #batchFirst: Int32Array; // per batch (in patch order): first slot in #order
  #batchPatch: Int32Array;
  #batchOrder: Int32Array; // permutation of batches for this epoch

  /** A sampler over patches with `counts[p]` windows each. */
  constructor(counts: ArrayLike<number>, options: SamplerOptions) {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
      throw new Error(`batch size must be a positive integer, got ${options.batchSize}`);
    }
    this.counts = Int32Array.from(counts);
    this.batchSize = options.batchSize;
    this.shuffleWithinBatches = options.shuffleWithinBatches ?? true;
    this.shufflePatches = options.shufflePatches ?? true;
    this.#rng = new Rng(options.seed ?? 42);
    this.#rngAtEpochStart = this.#rng.getState();
    const P = this.counts.length;
    this.#offsets = new Int32Array(P + 1);
    let nb = 0;
    for (let p = 0; p < P; p++) {
      this.#offsets[p + 1] = this.#offsets[p] + this.counts[p];
      nb += Math.ceil(this.counts[p] / this.batchSize);
    }
    this.totalWindows = this.#offsets[P];
    this.batchesPerEpoch = nb;
    this.#order = new Int32Array(this.totalWindows);
    this.#batchFirst = new Int32Array(nb + 1);
    this.#batchPatch = new Int32Array(nb);
    this.#batchOrder = new Int32Array(nb);
    let b = 0;
    for (let p = 0; p < P; p++) {
      for (let s = 0; s < this.counts[p]; s += this.batchSize) {
        this.#batchFirst[b] = this.#offsets[p] + s;
        this.#batchPatch[b++] = p;
      }
    }
    this.#batchFirst[nb] = this.totalWindows;
    this.#position = nb; // no epoch planned yet
  }

  /** Epochs begun so far. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Batches of the current epoch handed out so far. */
  get position(): number {
    return this.#position;
  }

  /** Plans the next epoch (draws from the RNG) and rewinds to its first batch. */
  beginEpoch(): void {
    this.#rngAtEpochStart = this.#rng.getState();
    this.#plan();
    this.#epoch++;
    this.#position = 0;
  }

  #plan(): void {
    const order = this.#order, rng = this.#rng;
    for (let p = 0; p < this.counts.length; p++) {
      const off = this.#offsets[p], n = this.counts[p];
      for (let k = 0; k < n; k++) order[off + k] = k;
      if (this.shuffleWithinBatches) rng.shuffle(order, off, off + n);
    }
    const bo = this.#batchOrder;
    for (let b = 0; b < bo.length; b++) bo[b] = b;
    if (this.shufflePatches) rng.shuffle(bo);
  }

  /** The next batch of the current epoch, or null when the epoch is done. */
  next(): SampledBatch | null {
    if (this.#position >= this.batchesPerEpoch) return null;
    const b = this.#batchOrder[this.#position++];
    return {
      patch: this.#batchPatch[b],
      windows: this.#order.subarray(this.#batchFirst[b], this.#batchFirst[b + 1]),
    };
  }

  /** All batches of the current epoch from the current position, without advancing. */
  *peekRemaining(): Generator<SampledBatch> {
    for (let i = this.#position; i < this.batchesPerEpoch; i++) {
      const b = this.#batchOrder[i];
      yield {
        patch: this.#batchPatch[b],
        windows: this.#order.subarray(this.#batchFirst[b], this.#batchFirst[b + 1]),
      };
    }
  }

  /** The state to save (JSON-compatible). */
  /** Puts the last batch back (its step was not taken): the next call of `next` returns it again. */
  unread(): void {
    if (this.#position > 0) this.#position--;
  }

  getState(): SamplerState {
    return {
      epoch: this.#epoch,
      position: this.#position,
      rngAtEpochStart: this.#rngAtEpochStart,
      counts: Array.from(this.counts),
      batchSize: this.batchSize,
      shuffleWithinBatches: this.shuffleWithinBatches,
      shufflePatches: this.shufflePatches,
    };
  }

  /** Restores a saved state: the same epoch plan is drawn again and the position within it restored. */
  setState(state: SamplerState): void {
    const mismatch: string[] = [];
    if (state.batchSize !== this.batchSize) {
      mismatch.push(`batch size ${state.batchSize} vs ${this.batchSize}`);
    }
    if (state.shuffleWithinBatches !== this.shuffleWithinBatches) mismatch.push("shuffle-within-batches");
    if (state.shufflePatches !== this.shufflePatches) mismatch.push("shuffle-patches");
    if (state.counts.length !== this.counts.length || state.counts.some((c, i) => c !== this.counts[i])) {
      mismatch.push("windows per patch (the data or window sizes differ)");
    }
    if (mismatch.length) throw new Error(`sampler state does not fit this sampler: ${mismatch.join("; ")}`);
    this.#rng.setState(state.rngAtEpochStart);
    this.#rngAtEpochStart = this.#rng.getState();
    this.#epoch = state.epoch;
    if (state.epoch > 0) {
      this.#plan();
      this.#position = Math.min(state.position, this.batchesPerEpoch);
    } else this.#position = this.batchesPerEpoch;
  }
}
