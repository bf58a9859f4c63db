/**
 * A small seeded random number generator (xoshiro128**) whose whole state is four 32-bit integers, so it can be
 * saved in a checkpoint and restored to continue the same sequence.
 *
 * @module
 */

/** The saved state of a {@linkcode Rng}: four unsigned 32-bit integers. */
export type RngState = [number, number, number, number];

/** Seeded PRNG (xoshiro128**). Same seed, same sequence, on every machine. */
export class Rng {
  #s = new Uint32Array(4);

  /** Creates a generator from an integer seed (expanded with splitmix32). */
  constructor(seed = 42) {
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
      this.#s[i] = (z ^ (z >>> 16)) >>> 0;
    }
    if (this.#s.every((v) => v === 0)) this.#s[0] = 1;
  }

  /** Next unsigned 32-bit integer. */
  nextU32(): number {
    const s = this.#s;
    const result = Math.imul(rotl(Math.imul(s[1], 5), 7), 9) >>> 0;
    const t = s[1] << 9;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result;
  }

  /** Uniform float in [0, 1) with 32 random bits. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform integer in [0, n). */
  int(n: number): number {
    return Math.floor(this.next() * n);
  }

  /** Standard normal deviate (Box-Muller). */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }

  /** Shuffles `a[from, to)` in place (Fisher-Yates). */
  shuffle(a: { [i: number]: number }, from = 0, to?: number): void {
    const end = to ?? (a as unknown as { length: number }).length;
    for (let i = end - 1; i > from; i--) {
      const j = from + this.int(i - from + 1);
      const tmp = a[i];
      a[i] = a[j];
      a[j] = tmp;
    }
  }

  /** The current state, to save. */
  getState(): RngState {
    return [this.#s[0], this.#s[1], this.#s[2], this.#s[3]];
  }

  /** Restores a state saved with {@linkcode Rng.getState}. */
  setState(state: readonly number[]): void {
    if (state.length !== 4 || state.some((v) => !Number.isInteger(v) || v < 0 || v > 0xffffffff)) {
      throw new Error(`invalid RNG state ${JSON.stringify(state)}: expected four unsigned 32-bit integers`);
    }
    this.#s.set(state);
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}
