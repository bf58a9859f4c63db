/**
 * When a session stops before its target: SIGTERM/SIGINT (finish the step, save, exit 3; a second SIGINT exits at
 * once), and the time limit (stop while a step, or a validation pass, and a checkpoint still fit, from measured
 * times). Early stopping and divergence are decided by the loop from the losses.
 *
 * @module
 */

import { EXIT } from "../errors.ts";
import type { World } from "../parallel/world.ts";

/** Why a run stops, as a number all ranks can agree on (the largest wins). */
const REASONS = ["", "SIGTERM", "SIGINT", "time limit"];

/** Signals received before a session listened (see {@linkcode latchEarlySignals}). */
let early: { reason?: string; handlers: [Deno.Signal, () => void][] } | undefined;

/**
 * From the start of the process until a session listens ({@linkcode StopControl.install}): a SIGTERM or SIGINT
 * is remembered instead of ending the process, and the session then stops at once with a resumable state (a
 * scheduler's warning signal may come while the trainer is still starting).
 */
export function latchEarlySignals(): void {
  if (early) return;
  early = { handlers: [] };
  let sigints = 0;
  for (const sig of ["SIGTERM", "SIGINT"] as const) {
    const h = () => {
      // a second Ctrl-C while starting exits at once, as during training
      if (sig === "SIGINT" && ++sigints >= 2) Deno.exit(EXIT.interrupted);
      early!.reason ??= sig;
    };
    try {
      Deno.addSignalListener(sig, h);
      early.handlers.push([sig, h]);
    } catch {
      // signal not supported on this platform
    }
  }
}

/** Signals and the time limit: whether and why to stop. */
export class StopControl {
  /** Why the session should stop (`SIGTERM`, `SIGINT`, `time limit`), once decided. */
  reason?: string;
  /** Measured time of a training step (a moving estimate that leans to the slow side), ms. */
  stepMs = 0;
  /** Measured time of a validation pass, ms. */
  valMs = 0;
  /** Measured time of writing one checkpoint file, ms. */
  ckptMs = 2000;
  #sigints = 0;
  #handlers: [Deno.Signal, () => void][] = [];
  #deadline: number;

  /**
   * `timeLimit` (seconds) counts from `t0` (a `performance.now()` time); `onHardExit` runs before a second SIGINT
   * exits the process; `warn` reports what was received.
   */
  constructor(
    timeLimit: number | undefined,
    t0: number,
    private onHardExit: () => void,
    private warn: (msg: string) => void,
  ) {
    this.#deadline = timeLimit ? t0 + timeLimit * 1000 : Infinity;
  }

  #askedAt?: number;

  /**
   * When a stop was asked for (`performance.now()`): the signal's arrival, or the moment from which the time limit
   * leaves only enough for a checkpoint; undefined while none is. (A collective that waits for a rank that does
   * not answer gives up after it: see `World.watch`.)
   */
  stopAskedAt(): number | undefined {
    if (this.#askedAt !== undefined) return this.#askedAt;
    const last = this.#deadline - this.ckptMs * 1.5;
    return performance.now() >= last ? last : undefined;
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

  /** Before a new epoch: asks to stop when one more step would not fit. True when the session should stop. */
  beforeEpoch(): boolean {
    if (!this.reason && !this.fits(this.stepMs * 1.5)) this.reason = "time limit";
    return this.reason !== undefined;
  }

  /**
   * Agrees on stopping with the other ranks (a signal may reach only some of them, and each has its own clock):
   * all stop when one wants to. True when this session stops.
   */
  async sync(world: World): Promise<boolean> {
    if (world.size > 1) {
      const code = new Float64Array([this.reason ? Math.max(1, REASONS.indexOf(this.reason)) : 0]);
      await world.allreduceMax64(code, "the agreement on stopping after a step");
      if (code[0] > 0) this.reason = REASONS[code[0]];
    }
    return this.reason !== undefined;
  }

  /** Listens to SIGTERM and SIGINT (where the platform has them). */
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
    if (early) {
      for (const [sig, h] of early.handlers) Deno.removeSignalListener(sig, h);
      const reason = early.reason;
      early = undefined;
      if (reason) this.#onSignal(reason);
    }
  }

  /** Stops listening. */
  uninstall(): void {
    for (const [sig, h] of this.#handlers) Deno.removeSignalListener(sig, h);
    this.#handlers = [];
  }

  #onSignal(sig: string): void {
    if (sig === "SIGINT" && ++this.#sigints >= 2) {
      this.warn(
        "second interrupt: exiting now without writing a checkpoint (existing checkpoints are untouched)",
      );
      this.onHardExit();
      Deno.exit(EXIT.interrupted);
    }
    if (!this.reason) {
      this.reason = sig;
      this.#askedAt = performance.now();
      this.warn(`${sig} received: finishing the current step, then writing a resumable checkpoint`);
    }
  }
}

/**
 * Test hooks that exercise the real signal paths: GINO_GW_TEST_SIGTERM_AFTER_STEP (or ..._SIGKILL_...) sends this
 * process SIGTERM (SIGKILL) after that global step.
 */
export function testSignalStep(): { step: number; signal: Deno.Signal } | undefined {
  for (const signal of ["SIGTERM", "SIGKILL"] as const) {
    const hook = Deno.env.get(`GINO_GW_TEST_${signal}_AFTER_STEP`);
    if (hook) return { step: Number(hook), signal };
  }
  return undefined;
}
