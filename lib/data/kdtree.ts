/**
 * A static k-d tree over 3D points for nearest-neighbour and k-nearest-neighbour queries (no distance matrices).
 *
 * @module
 */

const LEAF = 8;

/** A k-d tree over a set of 3D points given as a flat `[n, 3]` array. */
export class KdTree {
  /** Point indices in tree order. */
  readonly perm: Int32Array;
  #split: Uint8Array; // split axis of the node whose median is at position m
  #pts: Float64Array;

  /**
   * Builds the tree over `points` (flat `[n, 3]`), or over the subset `indices` of them; queries return indices
   * into `points`.
   */
  constructor(points: Float64Array, indices?: ArrayLike<number>) {
    this.#pts = points;
    this.perm = indices
      ? Int32Array.from(indices)
      : Int32Array.from({ length: points.length / 3 }, (_, i) => i);
    this.#split = new Uint8Array(this.perm.length);
    this.#build(0, this.perm.length);
  }

  /** Number of points in the tree. */
  get size(): number {
    return this.perm.length;
  }

  #build(lo: number, hi: number): void {
    if (hi - lo <= LEAF) return;
    const pts = this.#pts, perm = this.perm;
    const min = [Infinity, Infinity, Infinity], max = [-Infinity, -Infinity, -Infinity];
    for (let i = lo; i < hi; i++) {
      const j = perm[i] * 3;
      for (let a = 0; a < 3; a++) {
        const v = pts[j + a];
        if (v < min[a]) min[a] = v;
        if (v > max[a]) max[a] = v;
      }
    }
    let axis = 0;
    if (max[1] - min[1] > max[axis] - min[axis]) axis = 1;
    if (max[2] - min[2] > max[axis] - min[axis]) axis = 2;
    const mid = (lo + hi) >> 1;
    this.#select(lo, hi - 1, mid, axis);
    this.#split[mid] = axis;
    this.#build(lo, mid);
    this.#build(mid + 1, hi);
  }

  // Quickselect: puts the element of rank k (by coordinate `axis`) at position k.
  #select(lo: number, hi: number, k: number, axis: number): void {
    const pts = this.#pts, perm = this.perm;
    while (hi > lo) {
      const pivot = pts[perm[(lo + hi) >> 1] * 3 + axis];
      let i = lo, j = hi;
      while (i <= j) {
        while (pts[perm[i] * 3 + axis] < pivot) i++;
        while (pts[perm[j] * 3 + axis] > pivot) j--;
        if (i <= j) {
          const t = perm[i];
          perm[i] = perm[j];
          perm[j] = t;
          i++;
          j--;
        }
      }
      if (k <= j) hi = j;
      else if (k >= i) lo = i;
      else return;
    }
  }

  /**
   * The k nearest points to (x, y, z): writes their indices and squared distances, nearest first, into `outIdx`
   * and `outD2` (length >= k) and returns how many were found (min(k, size)). Ties go to the lower index.
   */
  knn(x: number, y: number, z: number, k: number, outIdx: Int32Array, outD2: Float64Array): number {
    let found = 0;
    const pts = this.#pts, perm = this.perm, split = this.#split;
    const q = [x, y, z];
    const visit = (lo: number, hi: number) => {
      if (hi - lo <= LEAF) {
        for (let i = lo; i < hi; i++) consider(perm[i]);
        return;
      }
      const mid = (lo + hi) >> 1;
      const axis = split[mid];
      const d = q[axis] - pts[perm[mid] * 3 + axis];
      const [first, second] = d < 0 ? [[lo, mid], [mid + 1, hi]] : [[mid + 1, hi], [lo, mid]];
      visit(first[0], first[1]);
      consider(perm[mid]);
      if (found < k || d * d <= outD2[found - 1]) visit(second[0], second[1]);
    };
    const consider = (j: number) => {
      const dx = pts[j * 3] - x, dy = pts[j * 3 + 1] - y, dz = pts[j * 3 + 2] - z;
      const d2 = dx * dx + dy * dy + dz * dz;
      if (found === k && (d2 > outD2[k - 1] || (d2 === outD2[k - 1] && j > outIdx[k - 1]))) return;
      let i = found < k ? found++ : k - 1;
      while (i > 0 && (outD2[i - 1] > d2 || (outD2[i - 1] === d2 && outIdx[i - 1] > j))) {
        outD2[i] = outD2[i - 1];
        outIdx[i] = outIdx[i - 1];
        i--;
      }
      outD2[i] = d2;
      outIdx[i] = j;
    };
    if (k > 0 && this.perm.length > 0) visit(0, this.perm.length);
    return found;
  }

  /** Squared distance from (x, y, z) to the nearest point of the tree. */
  nearestD2(x: number, y: number, z: number): number {
    const pts = this.#pts, perm = this.perm, split = this.#split;
    let best = Infinity;
    const visit = (lo: number, hi: number): void => {
      if (hi - lo <= LEAF) {
        for (let i = lo; i < hi; i++) {
          const j = perm[i] * 3;
          const dx = pts[j] - x, dy = pts[j + 1] - y, dz = pts[j + 2] - z;
          const d2 = dx * dx + dy * dy + dz * dz;
          if (d2 < best) best = d2;
        }
        return;
      }
      const mid = (lo + hi) >> 1;
      const axis = split[mid];
      const j = perm[mid] * 3;
      const d = (axis === 0 ? x : axis === 1 ? y : z) - pts[j + axis];
      if (d < 0) visit(lo, mid);
      else visit(mid + 1, hi);
      const dx = pts[j] - x, dy = pts[j + 1] - y, dz = pts[j + 2] - z;
      const d2 = dx * dx + dy * dy + dz * dz;
      if (d2 < best) best = d2;
      if (d * d <= best) {
        if (d < 0) visit(mid + 1, hi);
        else visit(lo, mid);
      }
    };
    if (this.perm.length > 0) visit(0, this.perm.length);
    return best;
  }
}
