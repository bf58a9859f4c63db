/**
 * Radius neighbour search (Euclidean ball, boundary included: d^2 <= r^2) with a hash of cells of size r: never a
 * dense distance matrix. Output in CSR form over the queries, neighbours of each query in ascending data index
 * (the reference's order).
 *
 * @module
 */

/** CSR neighbour lists: the neighbours of query q are `index[rowSplits[q] .. rowSplits[q + 1])`. */
export interface Neighbors {
  /** Offsets of each query's neighbours in `index` (length queries + 1). */
  rowSplits: Int32Array;
  /** Neighbour (data) indices, grouped by query. */
  index: Int32Array;
}

/** Neighbourhood statistics, so users see when the radius does not fit the point spacing. */
export interface NeighborStats {
  /** Number of query points (rows of the CSR structure). */
  queries: number;
  /** Edges (neighbour pairs). */
  edges: number;
  /** Mean neighbours per query. */
  mean: number;
  /** Fewest neighbours of a query. */
  min: number;
  /** Most neighbours of a query. */
  max: number;
  /** Share of queries with no neighbour (their reduced output is zero). */
  emptyShare: number;
}

/** For every query point, the data points within distance r (flat [n, 3] arrays). */
export function radiusSearch(data: ArrayLike<number>, queries: ArrayLike<number>, radius: number): Neighbors {
  const n = data.length / 3, m = queries.length / 3;
  const r2 = radius * radius;
  const inv = 1 / radius;
  const key = (x: number, y: number, z: number) => `${x},${y},${z}`;
  const cells = new Map<string, number[]>();
  for (let j = 0; j < n; j++) {
    const k = key(
      Math.floor(data[j * 3] * inv),
      Math.floor(data[j * 3 + 1] * inv),
      Math.floor(data[j * 3 + 2] * inv),
    );
    let list = cells.get(k);
    if (!list) cells.set(k, list = []);
    list.push(j); // ascending by construction
  }
  const rowSplits = new Int32Array(m + 1);
  let index = new Int32Array(Math.max(16, m * 4));
  let count = 0;
  const found: number[] = [];
  for (let q = 0; q < m; q++) {
    const x = queries[q * 3], y = queries[q * 3 + 1], z = queries[q * 3 + 2];
    const cx = Math.floor(x * inv), cy = Math.floor(y * inv), cz = Math.floor(z * inv);
    found.length = 0;
    for (let dx = -1; dx <= 1; dx++) {
      for (let dy = -1; dy <= 1; dy++) {
        for (let dz = -1; dz <= 1; dz++) {
          const list = cells.get(key(cx + dx, cy + dy, cz + dz));
          if (!list) continue;
          for (const j of list) {
            const ex = data[j * 3] - x, ey = data[j * 3 + 1] - y, ez = data[j * 3 + 2] - z;
            if (ex * ex + ey * ey + ez * ez <= r2) found.push(j);
          }
        }
      }
    }
    found.sort((a, b) => a - b);
    if (count + found.length > index.length) {
      const bigger = new Int32Array(Math.max(index.length * 2, count + found.length));
      bigger.set(index.subarray(0, count));
      index = bigger;
    }
    for (const j of found) index[count++] = j;
    rowSplits[q + 1] = count;
  }
  return { rowSplits, index: index.slice(0, count) };
}

/** Statistics of a CSR neighbour structure. */
export function neighborStats(nb: Neighbors): NeighborStats {
  const m = nb.rowSplits.length - 1;
  let min = Infinity, max = 0, empty = 0;
  for (let q = 0; q < m; q++) {
    const c = nb.rowSplits[q + 1] - nb.rowSplits[q];
    if (c < min) min = c;
    if (c > max) max = c;
    if (c === 0) empty++;
  }
  const edges = nb.index.length;
  return { queries: m, edges, mean: m ? edges / m : 0, min: m ? min : 0, max, emptyShare: m ? empty / m : 0 };
}

/** The query index of every edge of a CSR structure (the segment ids of its reduction). */
export function edgeQueries(nb: Neighbors): Int32Array {
  const out = new Int32Array(nb.index.length);
  for (let q = 0; q + 1 < nb.rowSplits.length; q++) out.fill(q, nb.rowSplits[q], nb.rowSplits[q + 1]);
  return out;
}
