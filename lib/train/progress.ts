/**
 * The progress bar of a training epoch on a terminal (nothing when the output is not a terminal).
 *
 * @module
 */

const fmtLoss = (v: number) => (Number.isFinite(v) ? v.toFixed(6) : String(v));

/** `HH:MM:SS` */
export function fmtTime(sec: number): string {
  const h = Math.floor(sec / 3600), m = Math.floor((sec % 3600) / 60), s = Math.floor(sec % 60);
  return `${String(h).padStart(2, "0")}:${String(m).padStart(2, "0")}:${String(s).padStart(2, "0")}`;
}

/** One line, rewritten in place: epoch, bar, batches, running loss, time left in the epoch. */
export class ProgressBar {
  #enc = new TextEncoder();

  /** A bar that draws only when `enabled` (e.g. stdout is a terminal and the run is not quiet). */
  constructor(readonly enabled: boolean) {}

  /** Draws the state after `done` of `total` batches of `epoch` (1-based) of `epochs`. */
  update(epoch: number, epochs: number, done: number, total: number, loss: number, stepMs: number): void {
    if (!this.enabled) return;
    const bar = "=".repeat(Math.round((20 * done) / total)).padEnd(20);
    Deno.stdout.writeSync(this.#enc.encode(
      `\r epoch ${epoch}/${epochs} [${bar}] ${done}/${total} loss ${fmtLoss(loss)} ETA ${
        fmtTime(((total - done) * stepMs) / 1000)
      } `,
    ));
  }

  /** Clears the line. */
  clear(): void {
    if (this.enabled) Deno.stdout.writeSync(this.#enc.encode("\r\x1b[K"));
  }
}
