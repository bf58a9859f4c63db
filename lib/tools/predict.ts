/**
 * Prediction and evaluation with a trained checkpoint: the model on every window of a part of the data (its own
 * normalisation statistics, never recomputed), optionally rolled out autoregressively, with metrics in physical
 * units per target variable, patch and forecast step, next to two baselines on the same windows (persistence: the
 * last input step repeated; linear extrapolation of the last two input steps). Writes `metrics.json`, CSV files of
 * predictions mapped back to the mesh nodes, and PNG figures.
 *
 * @module
 */

import { initBackend, tf } from "../model/backend.ts";
import { gpuEngineFor } from "../model/gpu/engine.ts";
import type { BackendName } from "../model/backend.ts";
import { loadCheckpoint, restoreTensors } from "../train/checkpoint.ts";
import { DataError, loadPatchDataset } from "../data/dataset.ts";
import type { Part, Patch, PatchDataset } from "../data/dataset.ts";
import { createGino } from "../model/gino.ts";
import type { Gino, GinoGeometry } from "../model/gino.ts";
import { latentGrid } from "../model/latent.ts";
import { predictWindow, residualOf } from "../model/residual.ts";
import type { ResidualSpec } from "../model/residual.ts";
import { readNpy } from "../io/npy.ts";
import { writeTextFileAtomic } from "../io/atomic.ts";
import { readMf6Grid } from "../io/mf6.ts";
import type { Mf6Grid } from "../io/mf6.ts";
import { encodeVtu, prismCells, vertexCells, writePvd } from "../io/vtu.ts";
import { MF6_GRID_FILE } from "../data/prepare.ts";
import { COLORS, renderChart } from "../plot/chart.ts";
import { writeFigure } from "../plot/figure.ts";
import { renderFieldMaps } from "../plot/fieldmap.ts";

/** Options of {@linkcode predict}. */
export interface PredictOptions {
  /** The checkpoint (its settings, weights and normalisation statistics are used). */
  checkpoint: string;
  /** Data folder (default: the checkpoint's). */
  baseDataDir?: string;
  /** Patch subfolder (default: the checkpoint's). */
  patchDataSubdir?: string;
  /** Which windows: `val` (default), `train` or `all` (the whole series). */
  part?: Part | "all";
  /** Output windows chained autoregressively (1 = a single window). */
  rollout?: number;
  /** Windows per forward pass. */
  batchSize?: number;
  /** Compute backend used. */
  backend?: BackendName;
  /** Output folder (metrics.json, predictions/, figures). */
  outDir: string;
  /** Write the per-time-step CSV files (default true). */
  csv?: boolean;
  /** Write the PNG figures (default true). */
  figures?: boolean;
  /** Write one ParaView `.vtu` per predicted time step and a `.pvd` collection (default false). */
  vtu?: boolean;
  /** Time steps of the cross-section maps (built-in demo data); default first and last predicted steps. */
  mapSteps?: number[];
  /** Progress messages. */
  log?: (msg: string) => void;
}

/** Error statistics of one variable (physical units). */
export interface ErrorStats {
  /** ||pred - true|| / ||true|| over all points, windows and steps counted. */
  rel_l2_field: number;
  /** Root-mean-square error. */
  rmse: number;
  /** Mean absolute error. */
  mae: number;
  /** Largest absolute error. */
  max_error: number;
  /** Coefficient of determination 1 - SS_res / SS_tot (NaN when the true values are constant). */
  r2: number;
  /** Values compared. */
  count: number;
}

/** Statistics of a predictor: overall, per forecast step (1-based lead), per patch. */
export interface PredictorMetrics {
  /** The training loss's relative L2 (standardised units, per window and point over the horizon), mean. */
  rel_l2_loss: number;
  /** Over all windows, points and steps, per column. */
  overall: Record<string, ErrorStats>;
  /** Per forecast step (index 0 = lead 1), per column. */
  per_step: Record<string, ErrorStats[]>;
  /** Per patch, per column. */
  per_patch: Record<string, Record<string, ErrorStats>>;
}

/** The report of {@linkcode predict} (also `metrics.json`). */
export interface PredictReport {
  /** The checkpoint evaluated. */
  checkpoint: string;
  /** The patch folder that was loaded. */
  data_dir: string;
  /** Which part of the series. */
  part: string;
  /** Output windows chained. */
  rollout: number;
  /** Forecast steps. */
  horizon: number;
  /** Windows evaluated. */
  windows: number;
  /** Target columns, in channel order. */
  target_cols: string[];
  /** What the units are. */
  units: string;
  /** Metrics of the model. */
  model: PredictorMetrics;
  /** Metrics of persistence (the last input step repeated). */
  persistence: PredictorMetrics;
  /** Metrics of linear extrapolation. */
  linear: PredictorMetrics;
  /** Metrics of the model's fitted base forecast alone (models trained with `--residual-base fitted`). */
  fitted_base?: PredictorMetrics;
  /** CSV files written. */
  csv_files: number;
  /** ParaView files written (one `.vtu` per predicted time step, listed in `prediction.pvd`). */
  vtu_files: number;
  /** Figures written. */
  figures: string[];
}

class Acc {
  se = 0;
  ae = 0;
  max = 0;
  yy = 0;
  y = 0;
  n = 0;
  add(pred: number, truth: number) {
    const e = pred - truth;
    this.y += truth;
    this.se += e * e;
    this.ae += Math.abs(e);
    if (Math.abs(e) > this.max) this.max = Math.abs(e);
    this.yy += truth * truth;
    this.n++;
  }
  stats(): ErrorStats {
    return {
      rel_l2_field: this.yy > 0 ? Math.sqrt(this.se / this.yy) : NaN,
      rmse: this.n ? Math.sqrt(this.se / this.n) : NaN,
      mae: this.n ? this.ae / this.n : NaN,
      max_error: this.max,
      r2: this.n && this.yy - this.y * this.y / this.n > 0
        ? 1 - this.se / (this.yy - this.y * this.y / this.n)
        : NaN,
      count: this.n,
    };
  }
}

class PredictorAcc {
  overall: Acc[];
  perStep: Acc[][];
  perPatch = new Map<string, Acc[]>();
  lossSum = 0;
  lossN = 0;
  constructor(readonly cols: number, readonly horizon: number) {
    this.overall = Array.from({ length: cols }, () => new Acc());
    this.perStep = Array.from({ length: cols }, () => Array.from({ length: horizon }, () => new Acc()));
  }
  patch(name: string): Acc[] {
    let a = this.perPatch.get(name);
    if (!a) this.perPatch.set(name, a = Array.from({ length: this.cols }, () => new Acc()));
    return a;
  }
  result(colNames: string[]): PredictorMetrics {
    const byCol = <T>(f: (c: number) => T) => Object.fromEntries(colNames.map((n, c) => [n, f(c)]));
    return {
      rel_l2_loss: this.lossN ? this.lossSum / this.lossN : NaN,
      overall: byCol((c) => this.overall[c].stats()),
      per_step: byCol((c) => this.perStep[c].map((a) => a.stats())),
      per_patch: byCol((c) => Object.fromEntries([...this.perPatch].map(([p, a]) => [p, a[c].stats()]))),
    };
  }
}

/** Start steps of the windows of a part that leave room for the whole horizon. */
function windowStarts(p: Patch, part: Part | "all", tin: number, horizon: number, stride: number): number[] {
  const [lo, hi] = part === "train"
    ? [0, p.trainSteps]
    : part === "val"
    ? [p.trainSteps, p.steps]
    : [0, p.steps];
  const out: number[] = [];
  for (let t = lo; t + tin + horizon <= hi; t += stride) out.push(t);
  return out;
}

/**
 * Runs the model on `windows` input windows x [windows, N, C * Tin] of a geometry: [windows, N, C * Tout]
 * (standardised), with the residual base added when given. The GPU engine is one.
 */
export type WindowRunner = (
  geom: GinoGeometry,
  x: Float32Array,
  windows: number,
  residual?: ResidualSpec,
) => Promise<Float32Array>;

/**
 * Forecasts `horizon` steps for windows starting at `starts` of patch `p`: x is built from the true series, then
 * each output window is fed back as input (rollout). `residual`: the model's residual (see `residualOf`). Returns
 * standardised predictions [B][C][N][horizon] flat. `run`: how the model is run (default: tfjs ops).
 */
export async function forecast(
  model: Gino,
  geom: GinoGeometry,
  p: Patch,
  starts: number[],
  cols: number,
  tin: number,
  tout: number,
  rollout: number,
  residual: ResidualSpec | boolean = false,
  run?: WindowRunner,
): Promise<Float32Array> {
  // `true`: the residual on the last input step (the form before the bases existed)
  const spec = residual === true ? { cols, tin, tout } : residual || undefined;
  const B = starts.length, N = p.n, T = p.steps, H = tout * rollout;
  const out = new Float32Array(B * cols * N * H);
  // seq[b][c][n][k]: the last tin steps known for each point (true at first, then predicted)
  const x = new Float32Array(B * N * cols * tin);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      for (let c = 0; c < cols; c++) {
        const src = (c * N + n) * T + starts[b];
        for (let i = 0; i < tin; i++) x[((b * N + n) * cols + c) * tin + i] = p.values[src + i];
      }
    }
  }
  for (let k = 0; k < rollout; k++) {
    let pred: Float32Array;
    if (run) pred = await run(geom, x, B, spec);
    else {
      const predT = tf.tidy(() => predictWindow(model, geom, tf.tensor3d(x, [B, N, cols * tin]), spec));
      pred = await predT.data() as Float32Array;
      predT.dispose();
    }
    for (let b = 0; b < B; b++) {
      for (let n = 0; n < N; n++) {
        for (let c = 0; c < cols; c++) {
          const po = ((b * N + n) * cols + c) * tout, xo = ((b * N + n) * cols + c) * tin;
          for (let j = 0; j < tout; j++) out[((b * cols + c) * N + n) * H + k * tout + j] = pred[po + j];
          if (k + 1 < rollout) {
            // next input: the last tin steps of (inputs followed by predictions)
            const seq = [...x.subarray(xo, xo + tin), ...pred.subarray(po, po + tout)];
            for (let i = 0; i < tin; i++) x[xo + i] = seq[seq.length - tin + i];
          }
        }
      }
    }
  }
  return out;
}

/** What the evaluation collects over all windows. */
interface Collected {
  /** Accumulators of the model and both baselines. */
  acc: { model: PredictorAcc; persistence: PredictorAcc; linear: PredictorAcc; fitted_base?: PredictorAcc };
  /** Windows evaluated. */
  windows: number;
  /**
   * Per predicted time step: every node once (node id, coordinates, per column true/predicted/error), from the
   * non-overlapping trajectories from the start of the part, and the last window for the steps after them.
   */
  fields: Map<number, StepField>;
  /** (true, predicted) pairs of the first column, a sample for the scatter figure. */
  scatter: [number, number][];
  /** First column per time step and node, for the field maps. */
  fieldAt: Map<number, Map<number, { truth: number; pred: number }>>;
}

/** One patch's data needed to score windows. */
interface PatchCtx {
  p: Patch;
  nodes: number[];
  coords: Float64Array;
  phys: (c: number, v: number) => number;
  C: number;
  tin: number;
  horizon: number;
  /** Output steps of one model window, and the fitted base's weights (see `base_fit.ts`), if the model has one. */
  tout: number;
  fit?: ArrayLike<number>;
}

/** The fitted base's forecast of column `c` from its `tin` last values `hist`, chained over `horizon` steps. */
function fittedForecast(x: PatchCtx, c: number, hist: number[]): number[] {
  const { tin, tout, horizon, fit } = x;
  const out: number[] = [];
  while (out.length < horizon) {
    const w = hist.slice(-tin), k = c * (tin + 1);
    for (let h = 0; h < tout; h++) {
      let v = fit![(k + tin) * tout + h];
      for (let i = 0; i < tin; i++) v += fit![(k + i) * tout + h] * w[i];
      out.push(v);
      hist.push(v);
    }
  }
  return out.slice(0, horizon);
}

/** Adds one forecast window (starting at `t0`, prediction `pred` of window `b`) to the accumulators. */
function scoreWindow(
  x: PatchCtx,
  col: Collected,
  pred: Float32Array,
  b: number,
  t0: number,
  traj: boolean,
): void {
  const { p, C, tin, horizon, phys, nodes } = x;
  const T = p.steps, N = p.n, nc = p.nCore;
  for (const [kind, a] of Object.entries(col.acc)) {
    if (!a) continue;
    const patchAcc = a.patch(p.name);
    let lossSum = 0;
    for (let n = 0; n < nc; n++) {
      let num = 0, den = 0;
      for (let c = 0; c < C; c++) {
        const row = (c * N + n) * T;
        const last = p.values[row + t0 + tin - 1], prev = p.values[row + t0 + tin - 2] ?? last;
        const fitted = kind === "fitted_base"
          ? fittedForecast(x, c, Array.from(p.values.subarray(row + t0, row + t0 + tin)))
          : undefined;
        for (let h = 0; h < horizon; h++) {
          const truth = p.values[row + t0 + tin + h];
          const v = kind === "model"
            ? pred[((b * C + c) * N + n) * horizon + h]
            : kind === "persistence"
            ? last
            : fitted
            ? fitted[h]
            : last + (h + 1) * (tin >= 2 ? last - prev : 0);
          num += (v - truth) ** 2;
          den += truth * truth;
          const pv = phys(c, v), tv = phys(c, truth);
          a.overall[c].add(pv, tv);
          a.perStep[c][h].add(pv, tv);
          patchAcc[c].add(pv, tv);
          if (kind !== "model" || c !== 0) continue;
          if (col.scatter.length < 20000 && (n + h + b) % 7 === 0) col.scatter.push([tv, pv]);
          if (traj) {
            const step = t0 + tin + h;
            let m = col.fieldAt.get(step);
            if (!m) col.fieldAt.set(step, m = new Map());
            m.set(nodes[n], { truth: tv, pred: pv });
          }
        }
      }
      lossSum += Math.sqrt(num) / Math.sqrt(den);
    }
    a.lossSum += lossSum;
    a.lossN += nc;
  }
}

/** One predicted time step over the mesh: node ids, coordinates and per column (true, predicted, error). */
interface StepField {
  nodes: number[];
  xyz: number[];
  /** Per node, C x 3 values. */
  vals: number[];
}

/**
 * Collects the nodes of one forecast window (the core points of its patch) into the per-step fields, for its steps
 * from `from` on.
 */
function fieldsOf(x: PatchCtx, col: Collected, pred: Float32Array, b: number, t0: number, from = 0): void {
  const { p, C, tin, horizon, phys, nodes, coords } = x;
  const T = p.steps, N = p.n;
  for (let h = 0; h < horizon; h++) {
    const step = t0 + tin + h;
    if (step < from) continue;
    let f = col.fields.get(step);
    if (!f) col.fields.set(step, f = { nodes: [], xyz: [], vals: [] });
    for (let n = 0; n < p.nCore; n++) {
      f.nodes.push(nodes[n]);
      f.xyz.push(coords[n * 3], coords[n * 3 + 1], coords[n * 3 + 2]);
      for (let c = 0; c < C; c++) {
        const truth = phys(c, p.values[(c * N + n) * T + step]);
        const pv = phys(c, pred[((b * C + c) * N + n) * horizon + h]);
        f.vals.push(truth, pv, pv - truth);
      }
    }
  }
}

/** The order of a step's nodes by node id. */
const byNode = (f: StepField) => f.nodes.map((_, i) => i).sort((a, b) => f.nodes[a] - f.nodes[b]);

/** Writes one CSV per predicted time step; returns how many. */
async function writeCsvs(outDir: string, cols: string[], fields: Map<number, StepField>): Promise<number> {
  await Deno.mkdir(`${outDir}/predictions`, { recursive: true });
  const header = ["node", "X", "Y", "Z", ...cols.flatMap((c) => [`${c}_true`, `${c}_pred`, `${c}_error`])]
    .join(",");
  const C = cols.length;
  let files = 0;
  for (const [step, f] of [...fields].sort((a, b) => a[0] - b[0])) {
    const rows = byNode(f).map((i) =>
      [f.nodes[i], ...f.xyz.slice(3 * i, 3 * i + 3), ...f.vals.slice(3 * C * i, 3 * C * (i + 1))].map(fmt)
        .join(",")
    );
    await writeTextFileAtomic(
      `${outDir}/predictions/${String(step).padStart(4, "0")}.csv`,
      `${header}\n${rows.join("\n")}\n`,
    );
    files++;
  }
  return files;
}

/**
 * Writes one `.vtu` per predicted time step (`vtu/step_NNNN.vtu`: per column `<col>_true`, `<col>_pred`,
 * `<col>_error`) and `prediction.pvd` listing them with their times (the data's saved times where it has them,
 * else the step numbers). Data prepared from MODFLOW 6 is drawn as its cells (from the grid file kept with the
 * patches: hexahedra for DIS, prisms for DISV) with the values on the cells; other data as points. Returns how
 * many `.vtu` files.
 */
async function writeVtus(
  outDir: string,
  dataDir: string,
  cols: string[],
  fields: Map<number, StepField>,
): Promise<number> {
  await Deno.mkdir(`${outDir}/vtu`, { recursive: true });
  let meta: { times?: number[] } = {};
  try {
    meta = JSON.parse(await Deno.readTextFile(`${dataDir}/patches.json`));
  } catch {
    // no metadata: times are step numbers
  }
  let grid: Mf6Grid | undefined;
  try {
    await Deno.stat(`${dataDir}/${MF6_GRID_FILE}`);
    grid = await readMf6Grid(`${dataDir}/${MF6_GRID_FILE}`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const C = cols.length, entries: { time: number; file: string }[] = [];
  for (const [step, f] of [...fields].sort((a, b) => a[0] - b[0])) {
    const order = byNode(f);
    const arrays = cols.flatMap((c, ci) =>
      ["true", "pred", "error"].map((k, j) => ({
        name: `${c}_${k}`,
        values: Float64Array.from(order, (i) => f.vals[3 * C * i + 3 * ci + j]),
      }))
    );
    let text: string;
    if (grid?.outline) {
      const g = grid, o = grid.outline;
      const cells = order.map((i) => f.nodes[i] - 1);
      const outlines = cells.map((cell) => {
        const c2 = cell % g.ncpl, vs = o.vert.subarray(o.vstart[c2], o.vstart[c2 + 1]);
        return { vx: Array.from(vs, (v) => o.vx[v]), vy: Array.from(vs, (v) => o.vy[v]) };
      });
      const { points, cells: vc } = prismCells(
        outlines,
        cells.map((c) => g.top[c]),
        cells.map((c) => g.bot[c]),
      );
      text = encodeVtu(points, vc, {
        cells: [...arrays, { name: "node", values: Float64Array.from(cells, (c) => c + 1) }],
        field: g.crs ? { CRS: g.crs } : undefined,
      });
    } else {
      const points = Float64Array.from(order.flatMap((i) => f.xyz.slice(3 * i, 3 * i + 3)));
      text = encodeVtu(points, vertexCells(order.length), {
        points: [...arrays, { name: "node", values: Float64Array.from(order, (i) => f.nodes[i]) }],
      });
    }
    const file = `vtu/step_${String(step).padStart(4, "0")}.vtu`;
    await writeTextFileAtomic(`${outDir}/${file}`, text);
    entries.push({ time: meta.times?.[step] ?? step, file });
  }
  await writePvd(`${outDir}/prediction.pvd`, entries, grid?.crs);
  return entries.length;
}

/** Runs the evaluation; see the module documentation. */
export async function predict(o: PredictOptions): Promise<PredictReport> {
  const log = o.log ?? (() => {});
  const ckpt = await loadCheckpoint(o.checkpoint);
  const s = ckpt.state.config;
  const cols = s.data.targetCols, tin = s.data.inputWindow, tout = s.data.outputWindow;
  const rollout = o.rollout ?? 1;
  if (!Number.isInteger(rollout) || rollout < 1) {
    throw new DataError(`--rollout must be a positive integer, got ${rollout}`);
  }
  const horizon = tout * rollout, part = o.part ?? "val";
  const baseDataDir = o.baseDataDir ?? s.data.baseDataDir;
  const dataDir = `${baseDataDir}/${o.patchDataSubdir ?? s.data.patchDataSubdir}`;
  const ds: PatchDataset = await loadPatchDataset(dataDir, {
    targetCols: cols,
    inputWindow: tin,
    outputWindow: tout,
    stride: s.data.windowStride,
    valRatio: s.data.valRatio,
    nanPolicy: s.data.nanPolicy,
    normalization: ckpt.state.normalization,
  });
  await initBackend(o.backend ?? "auto", log);
  const model = createGino(ckpt.state.gino_config as unknown as Record<string, unknown>);
  restoreTensors(ckpt, model);
  const engine = gpuEngineFor(model);
  const run: WindowRunner | undefined = engine
    ? (geom, xs, windows, spec) => engine.forward(geom, xs, windows, windows, spec)
    : undefined;
  const { mean, std } = ckpt.state.normalization;
  const C = cols.length;
  const residual = residualOf(s.model, C, tin, tout, ckpt.state.residual_fit);
  const fit = residual?.base === "fitted" ? residual.fit : undefined;
  const col: Collected = {
    acc: {
      model: new PredictorAcc(C, horizon),
      persistence: new PredictorAcc(C, horizon),
      linear: new PredictorAcc(C, horizon),
      fitted_base: fit ? new PredictorAcc(C, horizon) : undefined,
    },
    windows: 0,
    fields: new Map(),
    scatter: [],
    fieldAt: new Map(),
  };
  const batchSize = o.batchSize ?? s.data.batchSize;
  await Deno.mkdir(o.outDir, { recursive: true });
  // metrics.json, written last, marks a complete prediction: an earlier one's goes first, so a folder that this
  // run leaves unfinished (a full disk) is never taken for a complete one
  await Deno.remove(`${o.outDir}/metrics.json`).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
  const grid = s.model.latentGrid;
  for (const p of ds.patches) {
    const geom = model.geometry(p.coords, latentGrid(p.coords, grid), grid);
    const raw = await readNpy(`${dataDir}/${p.name}/core_coords.npy`);
    const x: PatchCtx = {
      p,
      nodes: await readNodeIds(`${dataDir}/${p.name}`, p),
      coords: Float64Array.from(raw.data as ArrayLike<number>),
      phys: (c, v) => v * std[c] + mean[c],
      C,
      tin,
      horizon,
      tout,
      fit,
    };
    const all = windowStarts(p, part, tin, horizon, 1);
    const traj = new Set(windowStarts(p, part, tin, horizon, horizon));
    // the steps after the last non-overlapping window come from the last window (so every step with a
    // prediction gets its field): from its first step that no trajectory window covers
    const covered = traj.size ? Math.max(...traj) + tin + horizon : 0;
    const tail = all.length && !traj.has(all[all.length - 1]) ? all[all.length - 1] : undefined;
    for (let b0 = 0; b0 < all.length; b0 += batchSize) {
      const starts = all.slice(b0, b0 + batchSize);
      const pred = await forecast(
        model,
        geom,
        p,
        starts,
        C,
        tin,
        tout,
        rollout,
        residual ?? false,
        run,
      );
      starts.forEach((t0, b) => {
        col.windows++;
        scoreWindow(x, col, pred, b, t0, traj.has(t0));
        if (o.csv === false && !o.vtu) return;
        if (traj.has(t0)) fieldsOf(x, col, pred, b, t0);
        else if (t0 === tail) fieldsOf(x, col, pred, b, t0, covered);
      });
    }
    engine?.release(geom);
    geom.dispose();
  }
  engine?.dispose();
  model.dispose();
  if (col.windows === 0) {
    throw new DataError(
      `no ${part} windows of ${tin} + ${horizon} steps in ${dataDir}; use --part all or a smaller --rollout`,
    );
  }
  const report: PredictReport = {
    checkpoint: o.checkpoint,
    data_dir: dataDir,
    part,
    rollout,
    horizon,
    windows: col.windows,
    target_cols: cols,
    units:
      "physical (de-normalised) units of each target column; rel_l2_loss in standardised units as in training",
    model: col.acc.model.result(cols),
    persistence: col.acc.persistence.result(cols),
    linear: col.acc.linear.result(cols),
    ...(col.acc.fitted_base ? { fitted_base: col.acc.fitted_base.result(cols) } : {}),
    csv_files: o.csv !== false ? await writeCsvs(o.outDir, cols, col.fields) : 0,
    vtu_files: o.vtu ? await writeVtus(o.outDir, dataDir, cols, col.fields) : 0,
    figures: [],
  };
  if (o.figures !== false) {
    report.figures = await writeFigures(o, report, col.scatter, col.fieldAt, String(baseDataDir));
  }
  await writeTextFileAtomic(`${o.outDir}/metrics.json`, JSON.stringify(report, null, 1) + "\n");
  return report;
}

const fmt = (v: number) => (Number.isInteger(v) ? String(v) : v.toPrecision(9));

async function readNodeIds(dir: string, p: Patch): Promise<number[]> {
  try {
    const a = await readNpy(`${dir}/core_nodes.npy`);
    const ids = Array.from(a.data as ArrayLike<number | bigint>, Number);
    if (ids.length >= p.nCore) return ids;
  } catch {
    // patch folders of the Python pipeline have no node ids
  }
  return Array.from({ length: p.nCore }, (_, i) => p.id * 1_000_000 + i + 1);
}

async function writeFigures(
  o: PredictOptions,
  r: PredictReport,
  scatter: [number, number][],
  fieldAt: Map<number, Map<number, { truth: number; pred: number }>>,
  baseDir: string,
): Promise<string[]> {
  const out: string[] = [];
  for (const col of r.target_cols) {
    const steps = Array.from({ length: r.horizon }, (_, i) => i + 1);
    const chart = renderChart({
      title: `Error over the forecast horizon: ${col}`,
      xLabel: "forecast step (lead)",
      yLabel: "RMSE (physical units)",
      integerX: true,
      series: [
        {
          name: "model",
          x: steps,
          y: r.model.per_step[col].map((s) => s.rmse),
          color: COLORS.blue,
          markers: true,
        },
        {
          name: "persistence",
          x: steps,
          y: r.persistence.per_step[col].map((s) => s.rmse),
          color: COLORS.grey,
          markers: true,
          dash: [8, 5],
        },
        {
          name: "linear extrapolation",
          x: steps,
          y: r.linear.per_step[col].map((s) => s.rmse),
          color: COLORS.orange,
          markers: true,
          dash: [3, 4],
        },
        ...(r.fitted_base
          ? [{
            name: "fitted base alone",
            x: steps,
            y: r.fitted_base.per_step[col].map((s) => s.rmse),
            color: COLORS.green,
            markers: true,
            dash: [10, 3, 2, 3],
          }]
          : []),
      ],
      notes: [`${r.windows} windows (${r.part} part), rollout ${r.rollout}`],
    });
    out.push(...await writeFigure(`${o.outDir}/error_vs_horizon_${col}`, chart));
  }
  const col0 = r.target_cols[0];
  const r2 = r.model.overall[col0].r2;
  const sc = renderChart({
    title: `Predicted vs true: ${col0} (R\u00b2 = ${Number.isFinite(r2) ? r2.toFixed(4) : "n/a"})`,
    xLabel: "true (physical units)",
    yLabel: "predicted (physical units)",
    diagonal: true,
    series: [{
      name: "model",
      x: scatter.map((p) => p[0]),
      y: scatter.map((p) => p[1]),
      color: COLORS.blue,
      lines: false,
    }],
    notes: [
      `R\u00b2 over all ${r.model.overall[col0].count.toLocaleString("en")} values; ` +
      `${scatter.length.toLocaleString("en")} of them drawn`,
    ],
    width: 760,
    height: 700,
  });
  out.push(...await writeFigure(`${o.outDir}/scatter_${col0}`, sc));
  // cross-section maps on the built-in Henry data (its grid is known)
  try {
    const henry = JSON.parse(await Deno.readTextFile(`${baseDir}/henry.json`));
    const steps = [...fieldAt.keys()].sort((a, b) => a - b);
    const chosen = o.mapSteps?.length
      ? o.mapSteps.filter((s) => fieldAt.has(s))
      : [steps[0], steps.at(-1)!].filter((s, i, a) => s !== undefined && a.indexOf(s) === i);
    for (const step of chosen) {
      const svg = await renderFieldMaps(
        henry.parameters,
        fieldAt.get(step)!,
        `${col0} at time step ${step} (y-row 1)`,
      );
      out.push(...await writeFigure(`${o.outDir}/section_${col0}_step${String(step).padStart(4, "0")}`, svg));
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out;
}

/**
 * The printed table: variable, metric, model, persistence, linear extrapolation, and the model's fitted base
 * alone when it has one.
 */
export function formatReport(r: PredictReport): string {
  const predictors = [r.model, r.persistence, r.linear, ...(r.fitted_base ? [r.fitted_base] : [])];
  const rows: string[][] = [[
    "variable",
    "metric",
    "model",
    "persistence",
    "linear",
    ...(r.fitted_base ? ["fitted base"] : []),
  ]];
  for (const col of r.target_cols) {
    for (const m of ["rel_l2_field", "rmse", "mae", "max_error"] as const) {
      rows.push([col, m, ...predictors.map((p) => p.overall[col][m].toPrecision(4))]);
    }
  }
  rows.push(["all", "rel_l2_loss", ...predictors.map((p) => p.rel_l2_loss.toPrecision(4))]);
  const w = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  const lines = rows.map((row) => row.map((c, i) => c.padEnd(w[i])).join("  "));
  lines.splice(1, 0, w.map((x) => "-".repeat(x)).join("  "));
  return `${r.windows} windows (${r.part} part), horizon ${r.horizon} steps (rollout ${r.rollout}), physical units\n${
    lines.join("\n")
  }`;
}
