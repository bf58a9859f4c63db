/**
 * Sparse linear algebra for the built-in simulator: a banded Cholesky factorisation (symmetric positive definite
 * systems whose matrix stays fixed while the right-hand side changes) and ILU(0)-preconditioned BiCGSTAB on CSR
 * matrices (non-symmetric systems that change every step).
 *
 * @module
 */

/** Cholesky factor of a symmetric positive definite band matrix, stored by rows as [n, bw + 1]. */
export class BandedCholesky {
  readonly n: number;
  readonly bw: number;
  #l: Float64Array; // row i holds L[i, i-bw .. i] at offsets 0..bw

  /**
   * Factorises the matrix given by `entry(i, j)` for |i - j| <= bw (only j <= i is asked for).
   * Throws when the matrix is not positive definite.
   */
  constructor(n: number, bw: number, entry: (i: number, j: number) => number) {
    this.n = n;
    this.bw = bw;
    const w = bw + 1;
    const l = new Float64Array(n * w);
    for (let i = 0; i < n; i++) {
      const j0 = Math.max(0, i - bw);
      for (let j = j0; j <= i; j++) {
        let s = entry(i, j);
        const k0 = Math.max(j0, j - bw);
        // s -= sum_k L[i,k] L[j,k]
        for (let k = k0; k < j; k++) s -= l[i * w + (k - i + bw)] * l[j * w + (k - j + bw)];
        if (j === i) {
          if (!(s > 0)) throw new Error(`matrix is not positive definite (pivot ${s} at row ${i})`);
          l[i * w + bw] = Math.sqrt(s);
        } else {
          l[i * w + (j - i + bw)] = s / l[j * w + bw];
        }
      }
    }
    this.#l = l;
  }

  /** Solves A x = b in place (b is overwritten with x). */
  solveInPlace(b: Float64Array): void {
    const { n, bw } = this;
    const w = bw + 1, l = this.#l;
    for (let i = 0; i < n; i++) {
      let s = b[i];
      for (let k = Math.max(0, i - bw); k < i; k++) s -= l[i * w + (k - i + bw)] * b[k];
      b[i] = s / l[i * w + bw];
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = b[i];
      for (let k = i + 1; k <= Math.min(n - 1, i + bw); k++) s -= l[k * w + (i - k + bw)] * b[k];
      b[i] = s / l[i * w + bw];
    }
  }
}

/** A square sparse matrix in CSR form with sorted column indices in each row and a pointer to each diagonal. */
export class CsrMatrix {
  readonly values: Float64Array;
  readonly diag: Int32Array;

  constructor(readonly n: number, readonly rowPtr: Int32Array, readonly colIdx: Int32Array) {
    this.values = new Float64Array(colIdx.length);
    this.diag = new Int32Array(n).fill(-1);
    for (let i = 0; i < n; i++) {
      for (let p = rowPtr[i]; p < rowPtr[i + 1]; p++) {
        if (p > rowPtr[i] && colIdx[p] <= colIdx[p - 1]) {
          throw new Error("CSR columns must be sorted and unique");
        }
        if (colIdx[p] === i) this.diag[i] = p;
      }
      if (this.diag[i] < 0) throw new Error(`CSR row ${i} has no diagonal entry`);
    }
  }

  /** Builds the pattern from each row's neighbour list (the diagonal is added). */
  static fromNeighbours(neighbours: number[][]): CsrMatrix {
    const n = neighbours.length;
    const rowPtr = new Int32Array(n + 1);
    const cols: number[] = [];
    for (let i = 0; i < n; i++) {
      const row = [...new Set([i, ...neighbours[i]])].sort((a, b) => a - b);
      cols.push(...row);
      rowPtr[i + 1] = cols.length;
    }
    return new CsrMatrix(n, rowPtr, Int32Array.from(cols));
  }

  /** Position of entry (i, j) in `values`, or -1. */
  find(i: number, j: number): number {
    for (let p = this.rowPtr[i]; p < this.rowPtr[i + 1]; p++) if (this.colIdx[p] === j) return p;
    return -1;
  }

  /** y = A x */
  multiply(x: Float64Array, y: Float64Array): void {
    const { rowPtr, colIdx, values } = this;
    for (let i = 0; i < this.n; i++) {
      let s = 0;
      for (let p = rowPtr[i]; p < rowPtr[i + 1]; p++) s += values[p] * x[colIdx[p]];
      y[i] = s;
    }
  }
}

/** Statistics of one iterative solve. */
export interface SolveStats {
  iterations: number;
  /** ||b - A x|| / ||b|| at the end. */
  relResidual: number;
}

/** ILU(0)-preconditioned BiCGSTAB with reusable work arrays. */
export class BiCgStab {
  #lu: Float64Array;
  #r: Float64Array;
  #r0: Float64Array;
  #p: Float64Array;
  #v: Float64Array;
  #s: Float64Array;
  #t: Float64Array;
  #ph: Float64Array;
  #sh: Float64Array;

  constructor(readonly a: CsrMatrix) {
    const n = a.n;
    this.#lu = new Float64Array(a.values.length);
    [this.#r, this.#r0, this.#p, this.#v, this.#s, this.#t, this.#ph, this.#sh] = Array.from(
      { length: 8 },
      () => new Float64Array(n),
    );
  }

  #factor(): void {
    const { rowPtr, colIdx, diag, n } = this.a;
    const lu = this.#lu;
    lu.set(this.a.values);
    for (let i = 1; i < n; i++) {
      for (let p = rowPtr[i]; p < diag[i]; p++) {
        const k = colIdx[p];
        const f = (lu[p] /= lu[diag[k]]);
        // row_i[j] -= f * row_k[j] for j > k present in both rows
        let q = diag[k] + 1;
        for (let pp = p + 1; pp < rowPtr[i + 1]; pp++) {
          const j = colIdx[pp];
          while (q < rowPtr[k + 1] && colIdx[q] < j) q++;
          if (q < rowPtr[k + 1] && colIdx[q] === j) lu[pp] -= f * lu[q];
        }
      }
    }
  }

  #precondition(x: Float64Array, out: Float64Array): void {
    const { rowPtr, colIdx, diag, n } = this.a;
    const lu = this.#lu;
    for (let i = 0; i < n; i++) {
      let s = x[i];
      for (let p = rowPtr[i]; p < diag[i]; p++) s -= lu[p] * out[colIdx[p]];
      out[i] = s;
    }
    for (let i = n - 1; i >= 0; i--) {
      let s = out[i];
      for (let p = diag[i] + 1; p < rowPtr[i + 1]; p++) s -= lu[p] * out[colIdx[p]];
      out[i] = s / lu[diag[i]];
    }
  }

  /**
   * Solves A x = b; `x` holds the initial guess and receives the solution. Stops when ||r|| <= tol ||b||.
   * Throws when it does not converge within `maxIter`.
   */
  solve(b: Float64Array, x: Float64Array, tol = 1e-13, maxIter = 2000): SolveStats {
    const a = this.a, n = a.n;
    this.#factor();
    const r = this.#r,
      r0 = this.#r0,
      p = this.#p,
      v = this.#v,
      s = this.#s,
      t = this.#t,
      ph = this.#ph,
      sh = this.#sh;
    const dot = (u: Float64Array, w: Float64Array) => {
      let d = 0;
      for (let i = 0; i < n; i++) d += u[i] * w[i];
      return d;
    };
    const bnorm = Math.sqrt(dot(b, b)) || 1;
    a.multiply(x, r);
    for (let i = 0; i < n; i++) r[i] = b[i] - r[i];
    let rnorm = Math.sqrt(dot(r, r));
    if (rnorm <= tol * bnorm) return { iterations: 0, relResidual: rnorm / bnorm };
    r0.set(r);
    p.fill(0);
    v.fill(0);
    let rho = 1, alpha = 1, omega = 1;
    for (let it = 1; it <= maxIter; it++) {
      const rhoNew = dot(r0, r);
      if (rhoNew === 0) break;
      const beta = (rhoNew / rho) * (alpha / omega);
      rho = rhoNew;
      for (let i = 0; i < n; i++) p[i] = r[i] + beta * (p[i] - omega * v[i]);
      this.#precondition(p, ph);
      a.multiply(ph, v);
      alpha = rho / dot(r0, v);
      for (let i = 0; i < n; i++) s[i] = r[i] - alpha * v[i];
      const snorm = Math.sqrt(dot(s, s));
      if (snorm <= tol * bnorm) {
        for (let i = 0; i < n; i++) x[i] += alpha * ph[i];
        return { iterations: it, relResidual: snorm / bnorm };
      }
      this.#precondition(s, sh);
      a.multiply(sh, t);
      omega = dot(t, s) / dot(t, t);
      for (let i = 0; i < n; i++) {
        x[i] += alpha * ph[i] + omega * sh[i];
        r[i] = s[i] - omega * t[i];
      }
      rnorm = Math.sqrt(dot(r, r));
      if (rnorm <= tol * bnorm) return { iterations: it, relResidual: rnorm / bnorm };
    }
    // Converged as far as float64 allows? Accept a residual near round-off, otherwise fail loudly.
    a.multiply(x, r);
    for (let i = 0; i < n; i++) r[i] = b[i] - r[i];
    rnorm = Math.sqrt(dot(r, r));
    if (rnorm <= 1e-9 * bnorm) return { iterations: maxIter, relResidual: rnorm / bnorm };
    throw new Error(
      `BiCGSTAB did not converge: relative residual ${
        (rnorm / bnorm).toExponential(2)
      } after ${maxIter} iterations`,
    );
  }
}
