/**
 * The GPU engine's matrix products, one family whose variant is chosen by shape. Every product the engine runs is
 * one of two kinds:
 *
 * - **Row products** `C[R, N] = epilogue(A[R, K] op(B))`, R large (edges, windows x points, windows x latent
 *   nodes), K and N small (the model's widths, 10 to 128), op(B) a weight `[K, N]` or a transposed one `[N, K]`
 *   (the backward pass's input gradients). A workgroup holds a 64-deep slice of the weight in workgroup memory,
 *   loaded once, and streams its rows of A (as vec4 along K where K and the offset allow it); each invocation
 *   keeps a 4-row register tile of 4 or 8 columns. The tile's width follows N: 16 columns where N <= 16 (the
 *   10 output channels), 32 where N <= 32, else 64 (several tiles for 128), so a narrow product is not padded to
 *   64 columns. The epilogue adds a bias and an addend, applies GELU (storing its derivative), multiplies by a
 *   stored derivative, or accumulates.
 * - **Weight gradients** `G[M, N] += X^T DY` with the bias gradient (the column sums of DY) as one more row, over
 *   R rows: split into chunks of rows (as many as fill a large GPU, at least 256 rows each) whose partial
 *   products go to a scratch buffer, then summed per output by 16 lanes and a tree in a fixed order. No atomics:
 *   a step is bitwise repeatable.
 *
 * {@linkcode gemmCost} gives the FLOPs and bytes of a product (for the profile), and the plans of both kinds
 * ({@linkcode rowGemm}, {@linkcode weightGradGemm}) are what `bench gemm` times.
 *
 * @module
 */

import { GELU_PAIR } from "./kernels.ts";
import type { BindingSpec, DispatchCost, KernelSpec } from "./runtime.ts";

const r = (name: string, type: BindingSpec["type"] = "f32"): BindingSpec => ({ name, access: "read", type });
const w = (name: string, type: BindingSpec["type"] = "f32"): BindingSpec => ({
  name,
  access: "read_write",
  type,
});

/** The epilogue of a row product, applied per output element in this order. */
export interface Epilogue {
  /** Add `BIAS[biasOff + n]`. */
  bias?: boolean;
  /** Add `ADD[addOff + index]`. */
  add?: boolean;
  /**
   * Add the inverse DFT along z of a mode buffer (an FNO layer's spectral part, or in the backward pass the
   * adjoint of its forward DFT along z): for row m = (column, z) and channel n, `sum_q Tc[z, q] SR[(column mz + q)
   * N + n] - Ts[z, q] SI[...]` with the table's cos part at `tOff` (`[g3, mz]`) and its sin part after it. The
   * full-grid result is never stored. An invocation's 4 rows lie in one column (g3 a multiple of 4), so each mode
   * value is read once for them.
   */
  spec?: boolean;
  /** Apply GELU, writing its derivative to `DOUT[dOff + index]`. */
  gelu?: boolean;
  /** Multiply by `DM[dOff + index]` (a stored GELU derivative: the backward pass through an activation). */
  muld?: boolean;
  /** Add into C instead of overwriting it. */
  accum?: boolean;
}

/** A row product's variant: its tile width, whether B is transposed and A is read as vec4, and its epilogue. */
export interface RowVariant extends Epilogue {
  /** Columns per workgroup tile: 16, 32 or 64. */
  tn: 16 | 32 | 64;
  /** B is stored `[N, K]` (a weight used transposed). */
  bT: boolean;
  /** A is read four K at a time (K and A's offset multiples of 4). */
  vecA: boolean;
  /**
   * Rows per invocation: 4 (the default), or 8, whose register tile (8 rows x 8 columns at tile width 64) reads
   * each weight value from workgroup memory once for twice the rows, at twice the registers. With the spectral
   * epilogue an invocation's rows lie in one column of the grid, so 8 needs the grid's last size a multiple of 8.
   */
  rows?: 4 | 8;
}

/** The rows per invocation a product gets when `chosen`: 8 needs, with the spectral epilogue, `g3` a multiple of 8. */
export function rowsFor(chosen: 4 | 8, spec: boolean, g3: number): 4 | 8 {
  return chosen === 8 && (!spec || g3 % 8 === 0) ? 8 : 4;
}

/** The rows per invocation the engine uses (`GINO_GW_GEMM_ROWS`: 4 or 8; see {@linkcode RowVariant.rows}). */
export function engineGemmRows(): 4 | 8 {
  let v: string | undefined;
  try {
    v = Deno.env.get("GINO_GW_GEMM_ROWS");
  } catch {
    v = undefined; // no --allow-env
  }
  return v === "8" ? 8 : 4;
}
/** Depth of the weight slice held in workgroup memory. */
const KC = 64;

/** Columns per invocation, invocations per row and rows per workgroup of a tile of width `tn`, `rt` rows each. */
function tileOf(tn: number, rt: number): { ct: number; colThreads: number; rowThreads: number; tm: number } {
  const ct = tn >= 64 ? 8 : 4;
  const colThreads = tn / ct, rowThreads = 256 / colThreads;
  return { ct, colThreads, rowThreads, tm: rowThreads * rt };
}

/** The tile width for N output columns. */
export function tileWidth(n: number): 16 | 32 | 64 {
  return n <= 16 ? 16 : n <= 32 ? 32 : 64;
}

/**
 * The row product kernel (see the module documentation): `C[cOff + m N + n] = epilogue(sum_k A[aOff + m K + k]
 * B(k, n))` with B(k, n) = `B[bOff + k N + n]`, or `B[bOff + n K + k]` when transposed.
 */
export function rowGemmKernel(v: RowVariant): KernelSpec {
  const RT = v.rows ?? 4;
  const { ct, colThreads, tm } = tileOf(v.tn, RT);
  const cv = ct / 4; // vec4 columns per invocation
  const key = `rgemm_${v.tn}${v.bT ? "_bt" : ""}${v.vecA ? "_v4" : ""}${RT === 8 ? "_r8" : ""}` +
    (["bias", "add", "spec", "gelu", "muld", "accum"] as const).filter((f) => v[f]).map((f) => `_${f}`).join(
      "",
    );
  const bindings = [v.vecA ? r("A", "vec4<f32>") : r("A"), r("B"), w("C")];
  if (v.bias) bindings.push(r("BIAS"));
  if (v.add) bindings.push(r("ADD"));
  if (v.spec) bindings.push(r("SR"), r("SI"), r("TAB"));
  if (v.muld) bindings.push(r("DM"));
  if (v.gelu) bindings.push(w("DOUT"));
  let epi = "var val = accv[q];\n";
  if (v.bias) epi += "        val = val + BIAS[u.biasOff + n];\n";
  if (v.add) epi += "        val = val + ADD[u.addOff + o];\n";
  if (v.spec) epi += "        val = val + spv[q];\n";
  if (v.gelu) {
    epi += "        let gp = gelu_pair(val);\n        DOUT[u.dOff + o] = gp.y;\n        val = gp.x;\n";
  }
  if (v.muld) epi += "        val = val * DM[u.dOff + o];\n";
  epi += v.accum ? "        C[u.cOff + o] = C[u.cOff + o] + val;" : "        C[u.cOff + o] = val;";
  const bLoad = v.bT ? "B[u.bOff + gn * u.K + gk]" : "B[u.bOff + gk * u.N + gn]";
  // one K step: every row's A value times the invocation's columns of the weight slice
  const fmaStep = (a: (i: number) => string, kk: string) =>
    Array.from({ length: cv }, (_, c) => `let b${c} = Bs[(${kk}) * ${v.tn / 4}u + cq + ${c}u];`).join(" ") +
    "\n" + Array.from(
      { length: RT },
      (_, i) =>
        Array.from({ length: cv }, (_, c) => `acc[${i * cv + c}] = acc[${i * cv + c}] + ${a(i)} * b${c};`)
          .join(
            " ",
          ),
    ).join("\n");
  const inner = v.vecA
    ? `
    for (var kk = 0u; kk < kn; kk = kk + 4u) {
      ${
      Array.from({ length: RT }, (_, i) => `let a${i} = A[(u.aOff + ra${i} * u.K + k0 + kk) >> 2u];`).join(
        "\n      ",
      )
    }
      ${[0, 1, 2, 3].map((j) => `{ ${fmaStep((i) => `a${i}.${"xyzw"[j]}`, `kk + ${j}u`)} }`).join("\n      ")}
    }`
    : `
    for (var kk = 0u; kk < kn; kk = kk + 1u) {
      ${
      Array.from({ length: RT }, (_, i) => `let a${i} = A[u.aOff + ra${i} * u.K + k0 + kk];`).join("\n      ")
    }
      ${fmaStep((i) => `a${i}`, "kk")}
    }`;
  return {
    key,
    bindings,
    uniforms: [
      "R",
      "N",
      "K",
      "tilesN",
      "aOff",
      "bOff",
      "cOff",
      "biasOff",
      "addOff",
      "dOff",
      "g3",
      "mz",
      "tOff",
    ],
    workgroup: 256,
    helpers: `var<workgroup> Bs : array<vec4<f32>, ${(KC * v.tn) / 4}>;\n${v.gelu ? GELU_PAIR : ""}`,
    body: `
  let tiles = ((u.R + ${tm - 1}u) / ${tm}u) * u.tilesN;
  if (wid >= tiles) { return; }
  let tn = wid % u.tilesN;
  let tmi = wid / u.tilesN;
  let cg = li % ${colThreads}u;
  let rg = li / ${colThreads}u;
  let cq = cg * ${cv}u;
  let row0 = tmi * ${tm}u + rg * ${RT}u;
  let col0 = tn * ${v.tn}u + cg * ${ct}u;
  ${Array.from({ length: RT }, (_, i) => `let ra${i} = min(row0 + ${i}u, u.R - 1u);`).join("\n  ")}
  var acc : array<vec4<f32>, ${RT * cv}>;
  for (var k0 = 0u; k0 < u.K; k0 = k0 + ${KC}u) {
    let kn = min(${KC}u, u.K - k0);
    for (var q = li; q < kn * ${v.tn}u; q = q + 256u) {
      let kq = q / ${v.tn}u;
      let nq = q % ${v.tn}u;
      let gk = k0 + kq;
      let gn = tn * ${v.tn}u + nq;
      var bv = 0.0;
      if (gn < u.N) { bv = ${bLoad}; }
      Bs[q >> 2u][q & 3u] = bv;
    }
    workgroupBarrier();
    ${inner}
    workgroupBarrier();
  }
  if (row0 >= u.R) { return; }
  ${v.spec ? specPrologue(cv, RT) : ""}
  for (var i = 0u; i < ${RT}u; i = i + 1u) {
    let m = row0 + i;
    if (m >= u.R) { break; }
    for (var c = 0u; c < ${cv}u; c = c + 1u) {
      let accv = acc[i * ${cv}u + c];
      ${v.spec ? `let spv = sp[i * ${cv}u + c];` : ""}
      for (var q = 0u; q < 4u; q = q + 1u) {
        let n = col0 + 4u * c + q;
        if (n >= u.N) { break; }
        let o = m * u.N + n;
        ${epi}
      }
    }
  }`,
  };
}

/** The spectral addends of an invocation's rows and columns (see {@linkcode Epilogue.spec}), into `sp`. */
function specPrologue(cv: number, RT: number): string {
  return `
  let colz = row0 / u.g3;
  let z0 = row0 - colz * u.g3;
  var sp : array<vec4<f32>, ${RT * cv}>;
  for (var c = 0u; c < ${cv}u; c = c + 1u) {
    for (var qq = 0u; qq < 4u; qq = qq + 1u) {
      let n = col0 + 4u * c + qq;
      if (n < u.N) {
        let xb = colz * u.mz * u.N + n;
        for (var q = 0u; q < u.mz; q = q + 1u) {
          let xr = SR[xb + q * u.N];
          let xi = SI[xb + q * u.N];
          for (var i = 0u; i < ${RT}u; i = i + 1u) {
            let z = z0 + i;
            let tc = TAB[u.tOff + z * u.mz + q];
            let ts = TAB[u.tOff + (u.g3 + z) * u.mz + q];
            sp[i * ${cv}u + c][qq] = sp[i * ${cv}u + c][qq] + tc * xr - ts * xi;
          }
        }
      }
    }
  }`;
}

/** Work of a row product of `R` rows: workgroups, and the tile width. */
export function rowGemmGroups(
  R: number,
  N: number,
  rows: 4 | 8 = 4,
): { groups: number; tn: 16 | 32 | 64; tilesN: number } {
  const tn = tileWidth(N), tilesN = Math.ceil(N / tn);
  return { groups: Math.ceil(R / tileOf(tn, rows).tm) * tilesN, tn, tilesN };
}

/** The row variant a kernel key names (the inverse of {@linkcode rowGemmKernel}'s key). */
export function rowVariantOf(key: string): RowVariant {
  const m = key.match(/^rgemm_(16|32|64)/);
  if (!m) throw new Error(`not a row product kernel: ${key}`);
  const f = (flag: string) => key.split("_").includes(flag);
  return {
    tn: Number(m[1]) as 16 | 32 | 64,
    bT: f("bt"),
    vecA: f("v4"),
    rows: f("r8") ? 8 : 4,
    bias: f("bias"),
    add: f("add"),
    spec: f("spec"),
    gelu: f("gelu"),
    muld: f("muld"),
    accum: f("accum"),
  };
}

/** A weight-gradient variant: its tile (rows M x columns N of the gradient) and whether it sums the bias row. */
export interface WeightGradVariant {
  /** Gradient rows and columns per tile: 16, 32 or 64 each. */
  tm: 16 | 32 | 64;
  tn: 16 | 32 | 64;
  /** Also the column sums of DY (the bias's gradient) as row M. */
  bias: boolean;
}

/** Invocations per tile (4 x 4 outputs each) and lanes (invocations sharing an output, over different rows). */
function lanesOf(v: { tm: number; tn: number }): { perTile: number; lanes: number; rc: number } {
  const perTile = (v.tm / 4) * (v.tn / 4), lanes = 256 / perTile;
  return { perTile, lanes, rc: Math.min(32, 16 * lanes) };
}

/**
 * Partial weight gradients: split s of the rows adds `X[r, m] DY[r, n]` over its rows into `P`, a tm x tn tile
 * per workgroup; where the tile has fewer outputs than the workgroup has invocations (4 x 4 each), several lanes
 * take alternate rows and each writes its own partial (as if they were more splits): `P[(s lanes + lane), m, n]`.
 * With `bias`, the column sums of DY go to row M of each partial (the tiles of the first row of tiles). X is
 * `[R, M]` at `xOff`, DY `[R, N]` at `dOff`, both row-major.
 */
export function weightGradKernel(v: WeightGradVariant): KernelSpec {
  const { perTile, lanes, rc } = lanesOf(v);
  const txs = v.tn / 4;
  return {
    key: `wgrad_${v.tm}x${v.tn}${v.bias ? "_bias" : ""}`,
    bindings: [r("X"), r("DY"), w("P")],
    uniforms: ["R", "M", "N", "tilesM", "tilesN", "chunk", "xOff", "dOff", "rowsP"],
    workgroup: 256,
    helpers: `var<workgroup> Xs : array<vec4<f32>, ${(rc * v.tm) / 4}>;
` +
      `var<workgroup> Ds : array<vec4<f32>, ${(rc * v.tn) / 4}>;`,
    body: `
  let tiles = u.tilesM * u.tilesN;
  let sp = wid / tiles;
  let rem = wid - sp * tiles;
  let tmi = rem / u.tilesN;
  let tni = rem - tmi * u.tilesN;
  let r0 = sp * u.chunk;
  if (r0 >= u.R) { return; }
  let r1 = min(u.R, r0 + u.chunk);
  let lane = li / ${perTile}u;
  let ti = li % ${perTile}u;
  let tx = ti % ${txs}u;
  let ty = ti / ${txs}u;
  var acc : array<vec4<f32>, 4>;
  var bsum = vec4<f32>(0.0);
  let doBias = ${v.bias ? "tmi == 0u && ty == 0u" : "false"};
  for (var rr = r0; rr < r1; rr = rr + ${rc}u) {
    for (var q = li; q < ${rc * v.tm}u; q = q + 256u) {
      let row = rr + q / ${v.tm}u;
      let gm = tmi * ${v.tm}u + q % ${v.tm}u;
      var xv = 0.0;
      if (row < r1 && gm < u.M) { xv = X[u.xOff + row * u.M + gm]; }
      Xs[q >> 2u][q & 3u] = xv;
    }
    for (var q = li; q < ${rc * v.tn}u; q = q + 256u) {
      let row = rr + q / ${v.tn}u;
      let gn = tni * ${v.tn}u + q % ${v.tn}u;
      var dv = 0.0;
      if (row < r1 && gn < u.N) { dv = DY[u.dOff + row * u.N + gn]; }
      Ds[q >> 2u][q & 3u] = dv;
    }
    workgroupBarrier();
    for (var k = lane; k < ${rc}u; k = k + ${lanes}u) {
      let a = Xs[k * ${v.tm / 4}u + ty];
      let b = Ds[k * ${v.tn / 4}u + tx];
      acc[0] = acc[0] + a.x * b;
      acc[1] = acc[1] + a.y * b;
      acc[2] = acc[2] + a.z * b;
      acc[3] = acc[3] + a.w * b;
      if (doBias) { bsum = bsum + b; }
    }
    workgroupBarrier();
  }
  let base = (sp * ${lanes}u + lane) * u.rowsP * u.N;
  for (var i = 0u; i < 4u; i = i + 1u) {
    let m = tmi * ${v.tm}u + ty * 4u + i;
    if (m >= u.M) { break; }
    for (var q = 0u; q < 4u; q = q + 1u) {
      let n = tni * ${v.tn}u + tx * 4u + q;
      if (n < u.N) { P[base + m * u.N + n] = acc[i][q]; }
    }
  }
  if (doBias) {
    for (var q = 0u; q < 4u; q = q + 1u) {
      let n = tni * ${v.tn}u + tx * 4u + q;
      if (n < u.N) { P[base + u.M * u.N + n] = bsum[q]; }
    }
  }`,
  };
}

/**
 * `OUT[oOff + i] += sum_s P[s n + i]` for i < n: the second half of a split weight gradient. 16 outputs per
 * workgroup, 16 lanes each summing every 16th split, then a tree over the lanes: a fixed order.
 */
export const SPLIT_SUM: KernelSpec = {
  key: "split_sum",
  bindings: [r("P"), w("OUT")],
  uniforms: ["n", "splits", "oOff"],
  workgroup: 256,
  helpers: "var<workgroup> sh : array<f32, 256>;",
  body: `
  let oi = li % 16u;
  let lane = li / 16u;
  let i = wid * 16u + oi;
  var s = 0.0;
  if (i < u.n) {
    for (var k = lane; k < u.splits; k = k + 16u) { s = s + P[k * u.n + i]; }
  }
  sh[li] = s;
  workgroupBarrier();
  for (var h = 8u; h > 0u; h = h >> 1u) {
    if (lane < h) { sh[li] = sh[li] + sh[li + h * 16u]; }
    workgroupBarrier();
  }
  if (lane == 0u && i < u.n) { OUT[u.oOff + i] = OUT[u.oOff + i] + sh[oi]; }`,
};

/**
 * How a weight gradient over `R` rows is run: its variant, rows per split, splits, tiles, and the partials the
 * sum adds (splits x lanes).
 */
export function weightGradPlan(
  R: number,
  M: number,
  N: number,
  bias: boolean,
): { v: WeightGradVariant; chunk: number; splits: number; tilesM: number; tilesN: number; partials: number } {
  const v: WeightGradVariant = { tm: tileWidth(M), tn: tileWidth(N), bias };
  const { lanes, rc } = lanesOf(v);
  const tilesM = Math.ceil(M / v.tm), tilesN = Math.ceil(N / v.tn), tiles = tilesM * tilesN;
  // enough workgroups to fill a large GPU (about 1024), each over at least 256 rows
  const want = Math.max(1, Math.min(Math.ceil(1024 / tiles), Math.ceil(R / 256)));
  const chunk = Math.ceil(Math.ceil(R / want) / rc) * rc;
  const splits = Math.ceil(R / chunk);
  return { v, chunk, splits, tilesM, tilesN, partials: splits * lanes };
}

/** Cost of a row product: 2 R N K FLOPs; A, B and C (and an addend, derivatives) moved once. */
export function gemmCost(
  R: number,
  N: number,
  K: number,
  e: Epilogue = {},
  spec?: { g3: number; mz: number },
): DispatchCost {
  const out = R * N;
  let floats = R * K + K * N + out;
  if (e.accum) floats += out;
  if (e.add) floats += out;
  if (e.gelu || e.muld) floats += out;
  let flops = 2 * R * N * K + (e.gelu ? 20 * out : 0);
  if (e.spec && spec) {
    floats += (2 * out * spec.mz) / spec.g3;
    flops += 4 * out * spec.mz;
  }
  return { flops, bytes: 4 * floats };
}
