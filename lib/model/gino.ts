/**
 * The GINO model (gino-spec.md): input GNO (points -> latent grid, linear kernel, mean), lifting, FNO blocks
 * (spectral convolution + 1x1 skip, GELU between layers), output GNO (latent grid -> points, linear kernel, sum),
 * projection. Float32, channels last. Parameters keep the reference PyTorch names; weights import from and export
 * to a PyTorch state_dict layout.
 *
 * The kernel MLP's first layer acts on concat(emb(neighbour), emb(query)); it is computed per node and gathered
 * per edge (W [a; b] = W_a a + W_b b): numerically the same, far fewer operations.
 *
 * @module
 */

import { tf } from "./backend.ts";
import { resolveGinoConfig } from "./config.ts";
import type { GinoConfig } from "./config.ts";
import { sinusoidalEmbedding } from "./embedding.ts";
import { edgeQueries, neighborStats, radiusSearch } from "./neighbors.ts";
import type { NeighborStats } from "./neighbors.ts";
import { dftMatrices, disposeDft, keptModeCounts, spectralConv } from "./spectral.ts";
import { part } from "./parts.ts";
import type { DftMatrices } from "./spectral.ts";
import { edgeReduce, fnoLayer, gatherRows, gelu, hasFnoLayerKernel } from "./ops.ts";
import { Rng } from "../data/rng.ts";
import { ToolError } from "../errors.ts";

/** A tensor in PyTorch layout (as in a state_dict / safetensors file). */
export interface TorchTensor {
  /** Element type name (safetensors dtype, e.g. F32). */
  dtype: string;
  /** Shape (C order). */
  shape: number[];
  /** The elements, C order. */
  data: ArrayLike<number> | BigInt64Array;
}

/** How a PyTorch parameter maps onto our variables. */
export interface ParamSpec {
  /** Parameter name in the reference state_dict (e.g. `fno_blocks.convs.0.weight`). */
  name: string;
  /** Shape in the reference (PyTorch) layout. */
  torchShape: number[];
  /** How the PyTorch layout maps to the variables: dense, 1x1 conv, bias, or complex spectral weights. */
  kind: "linear" | "conv" | "bias" | "specbias" | "spectral";
  /** The trainable variables holding it (two for a spectral weight: real and imaginary parts). */
  vars: tf.Variable[];
}

/** Per-patch geometry: embeddings and neighbour lists, computed once and reused for every batch of the patch. */
export interface GinoGeometry {
  /** Points N. */
  n: number;
  /** Latent grid shape [G1, G2, G3]. */
  grid: number[];
  /** Input-GNO embeddings of the points [N, 3 * 2 * channels]. */
  inEmbP: tf.Tensor2D;
  /** Embeddings of the latent nodes that have an input-GNO edge (compact rows). */
  inEmbL: tf.Tensor2D;
  /** Output-GNO embeddings of the points. */
  outEmbP: tf.Tensor2D;
  /** Embeddings of the latent nodes that have an output-GNO edge (compact rows). */
  outEmbL: tf.Tensor2D;
  /** Input GNO edges: point index and latent index per edge, latent-major. */
  inSrc: tf.Tensor1D;
  /** Input-GNO edges: the latent node of each edge (latent-major). */
  inDst: tf.Tensor1D;
  /** inDst as rows of the compact `inEmbL`. */
  inDstCompact: tf.Tensor1D;
  /** 1 / max(count, 1) per latent node [Q, 1]. */
  inInvCount: tf.Tensor2D;
  /** Output GNO edges: latent index and point index per edge, point-major. */
  outSrc: tf.Tensor1D;
  /** outSrc as rows of the compact `outEmbL`. */
  outSrcCompact: tf.Tensor1D;
  /** Output-GNO edges: the point of each edge (point-major). */
  outDst: tf.Tensor1D;
  /** 1 / max(count, 1) per point [N, 1] (mean reduction only). */
  outInvCount?: tf.Tensor2D;
  /** Neighbourhood statistics of both GNOs. */
  stats: { in: NeighborStats; out: NeighborStats };
  /** The same arrays on the host (the GPU engine builds its buffers from them). */
  host: GeometryHost;
  /** Frees the geometry's tensors. */
  dispose(): void;
}

/** A patch geometry's arrays on the host (see {@linkcode GinoGeometry}; edges sorted by their query). */
export interface GeometryHost {
  /** Input-GNO embeddings of the points [N, E]. */
  inEmbP: Float32Array;
  /** Input-GNO embeddings of the latent nodes with an edge [inUsed, E]. */
  inEmbL: Float32Array;
  /** Output-GNO embeddings of the points [N, E]. */
  outEmbP: Float32Array;
  /** Output-GNO embeddings of the latent nodes with an edge [outUsed, E]. */
  outEmbL: Float32Array;
  /** Input-GNO edges: the point of each edge. */
  inSrc: Int32Array;
  /** Input-GNO edges: the latent node of each edge (sorted). */
  inDst: Int32Array;
  /** inDst as rows of inEmbL. */
  inDstCompact: Int32Array;
  /** CSR offsets of the input-GNO edges per latent node [Q + 1]. */
  inRowSplits: Int32Array;
  /** 1 / max(count, 1) per latent node. */
  inInvCount: Float32Array;
  /** Output-GNO edges: the latent node of each edge. */
  outSrc: Int32Array;
  /** outSrc as rows of outEmbL. */
  outSrcCompact: Int32Array;
  /** Output-GNO edges: the point of each edge (sorted). */
  outDst: Int32Array;
  /** CSR offsets of the output-GNO edges per point [N + 1]. */
  outRowSplits: Int32Array;
  /** 1 / max(count, 1) per point (mean reduction only). */
  outInvCount?: Float32Array;
  /** Latent nodes with an input-GNO edge (rows of inEmbL). */
  inUsed: number;
  /** Latent nodes with an output-GNO edge (rows of outEmbL). */
  outUsed: number;
}

let instances = 0;

/** The GINO model. Create with {@linkcode createGino}. */
export class Gino {
  /** The resolved configuration. */
  readonly config: GinoConfig;
  /** Parameters in reference order, with their variables. */
  readonly params: ParamSpec[] = [];
  #dft = new Map<string, DftMatrices>();
  #id = ++instances;

  /** Builds the model; weights are initialised as PyTorch would (seeded), see gino-spec.md section 4. */
  constructor(config: Partial<GinoConfig> & Record<string, unknown> = {}, seed = 0) {
    if ((tf.engine() as unknown as { backendName?: string }).backendName === undefined) {
      throw new ToolError(
        "no compute backend is initialised: call `await initBackend()` (from mod.ts) before creating a GINO",
      );
    }
    this.config = resolveGinoConfig(config);
    const c = this.config;
    const rng = new Rng(seed);
    const uniform = (n: number, bound: number) =>
      Float32Array.from({ length: n }, () => (rng.next() * 2 - 1) * bound);
    const add = (
      name: string,
      torchShape: number[],
      kind: ParamSpec["kind"],
      values: Float32Array[],
      shapes: number[][],
    ) => {
      // (tidy frees the initial tensors: each variable owns its memory)
      const vars = tf.tidy(() =>
        values.map((v, i) =>
          tf.variable(tf.tensor(v, shapes[i]), true, `gino${this.#id}/${name}${i ? "#imag" : ""}`)
        )
      );
      this.params.push({ name, torchShape, kind, vars });
    };
    const dense = (prefix: string, cin: number, cout: number, kind: "linear" | "conv", convDims = 1) => {
      const bound = 1 / Math.sqrt(cin);
      const wShape = kind === "linear" ? [cout, cin] : [cout, cin, ...Array(convDims).fill(1)];
      add(`${prefix}.weight`, wShape, kind, [uniform(cin * cout, bound)], [[cin, cout]]);
    };
    const denseBias = (prefix: string, cin: number, cout: number) => {
      add(`${prefix}.bias`, [cout], "bias", [uniform(cout, 1 / Math.sqrt(cin))], [[cout]]);
    };
    const embIn = 3 * 2 * c.in_gno_pos_embed_channels, embOut = 3 * 2 * c.out_gno_pos_embed_channels;
    const mlp = (prefix: string, widths: number[]) => {
      for (let i = 0; i + 1 < widths.length; i++) {
        dense(`${prefix}.fcs.${i}`, widths[i], widths[i + 1], "linear");
        denseBias(`${prefix}.fcs.${i}`, widths[i], widths[i + 1]);
      }
    };
    mlp(
      "in_gno.integral_transform.channel_mlp",
      kernelWidths(c.in_gno_channel_mlp_layers, 2 * embIn, c.in_gno_out_channels),
    );
    const C = c.fno_hidden_channels;
    for (let l = 0; l < c.fno_n_layers; l++) dense(`fno_blocks.fno_skips.${l}`, C, C, "conv", 3);
    const [mx, my, mz] = keptModeCounts(c.fno_n_modes);
    const sigma = Math.sqrt(2 / (C + C));
    for (let l = 0; l < c.fno_n_layers; l++) {
      add(`fno_blocks.convs.${l}.bias`, [1, C, 1, 1, 1], "specbias", [
        Float32Array.from({ length: C }, () => sigma * rng.normal()),
      ], [[C]]);
      const size = mx * my * mz * C * C;
      const s = sigma / Math.SQRT2;
      add(
        `fno_blocks.convs.${l}.weight.0.tensor`,
        [C, C, mx, my, mz, 2],
        "spectral",
        [
          Float32Array.from({ length: size }, () => s * rng.normal()),
          Float32Array.from({ length: size }, () => s * rng.normal()),
        ],
        [[mx * my * mz, C, C], [mx * my * mz, C, C]],
      );
    }
    for (
      const [i, [a, b]] of [[c.in_gno_out_channels, c.lifting_channels], [c.lifting_channels, C]].entries()
    ) {
      dense(`lifting.fcs.${i}`, a, b, "conv");
      denseBias(`lifting.fcs.${i}`, a, b);
    }
    mlp("out_gno.integral_transform.channel_mlp", kernelWidths(c.out_gno_channel_mlp_layers, 2 * embOut, C));
    const P = c.projection_channel_ratio * C;
    for (const [i, [a, b]] of [[C, P], [P, c.out_channels]].entries()) {
      dense(`projection.fcs.${i}`, a, b, "conv");
      denseBias(`projection.fcs.${i}`, a, b);
    }
    // keep the reference's state_dict order
    const order = (n: string) =>
      ["in_gno", "fno_blocks.fno_skips", "fno_blocks.convs", "lifting", "out_gno", "projection"].findIndex((
        p,
      ) => n.startsWith(p));
    this.params.sort((a, b) => order(a.name) - order(b.name));
  }

  /** Variable by reference name (index 1 = imaginary part of a spectral weight). */
  v(name: string, i = 0): tf.Variable {
    const p = this.params.find((p) => p.name === name);
    if (!p) throw new Error(`no parameter ${name}`);
    return p.vars[i];
  }

  /** All trainable variables. */
  get variables(): tf.Variable[] {
    return this.params.flatMap((p) => p.vars);
  }

  /** Number of real scalars (as the reference counts them). */
  get parameterCount(): number {
    return this.params.reduce((s, p) => s + p.torchShape.reduce((a, b) => a * b, 1), 0);
  }

  /** Loads a PyTorch state_dict (reference names and layouts). Every parameter must be present with its shape. */
  loadTorchStateDict(tensors: Record<string, TorchTensor>): void {
    const problems: string[] = [];
    for (const p of this.params) {
      const t = tensors[p.name];
      if (!t) {
        problems.push(`missing ${p.name}`);
        continue;
      }
      if (t.shape.length !== p.torchShape.length || t.shape.some((d, i) => d !== p.torchShape[i])) {
        problems.push(`${p.name}: shape [${t.shape}] where the model has [${p.torchShape}]`);
      }
    }
    const extra = Object.keys(tensors).filter((k) => !this.params.some((p) => p.name === k));
    if (extra.length) problems.push(`unexpected ${extra.join(", ")}`);
    if (problems.length) {
      throw new Error(`state_dict does not fit this GINO configuration:\n  ${problems.join("\n  ")}`);
    }
    for (const p of this.params) {
      const t = tensors[p.name];
      if (t.data instanceof BigInt64Array || !["F32", "F64", "F16", "BF16"].includes(t.dtype ?? "F32")) {
        throw new Error(`${p.name}: expected floating-point weights, got ${t.dtype}`);
      }
      if (t.dtype === "F16" || t.dtype === "BF16") {
        throw new Error(`${p.name}: ${t.dtype} weights are not supported; save them as float32`);
      }
      const values = fromTorch(p, Float32Array.from(t.data as ArrayLike<number>));
      p.vars.forEach((v, i) => v.assign(tf.tensor(values[i], v.shape)));
    }
  }

  /** The weights as a PyTorch state_dict (reference names and layouts), in the reference's order. */
  toTorchStateDict(): Record<string, { dtype: string; shape: number[]; data: Float32Array }> {
    const out: Record<string, { dtype: string; shape: number[]; data: Float32Array }> = {};
    for (const p of this.params) {
      out[p.name] = {
        dtype: "F32",
        shape: p.torchShape,
        data: toTorch(p, p.vars.map((v) => v.dataSync() as Float32Array)),
      };
    }
    return out;
  }

  /**
   * The weights as a PyTorch state_dict, read asynchronously: the form every backend supports (GPU backends cannot
   * read synchronously; {@linkcode Gino.toTorchStateDict} works on wasm, cpu and tensorflow).
   */
  async readTorchStateDict(): Promise<
    Record<string, { dtype: string; shape: number[]; data: Float32Array }>
  > {
    const out: Record<string, { dtype: string; shape: number[]; data: Float32Array }> = {};
    for (const p of this.params) {
      const parts = await Promise.all(p.vars.map(async (v) => await v.data() as Float32Array));
      out[p.name] = { dtype: "F32", shape: p.torchShape, data: toTorch(p, parts) };
    }
    return out;
  }

  /** {@linkcode Gino.gradientsToTorch}, read asynchronously (every backend, GPU ones included). */
  async readGradientsToTorch(grads: tf.Tensor[]): Promise<Record<string, Float32Array>> {
    const out: Record<string, Float32Array> = {};
    let i = 0;
    for (const p of this.params) {
      const parts = await Promise.all(p.vars.map(async () => await grads[i++].data() as Float32Array));
      out[p.name] = toTorch(p, parts);
    }
    return out;
  }

  /** Converts gradients (one per variable, in {@linkcode variables} order) to PyTorch layout by parameter name. */
  gradientsToTorch(grads: tf.Tensor[]): Record<string, Float32Array> {
    const out: Record<string, Float32Array> = {};
    let i = 0;
    for (const p of this.params) {
      const parts = p.vars.map(() => grads[i++].dataSync() as Float32Array);
      out[p.name] = toTorch(p, parts);
    }
    return out;
  }

  #dftFor(grid: number[]): DftMatrices {
    const key = grid.join("x");
    let d = this.#dft.get(key);
    if (!d) {
      // cached across calls: keep them out of any enclosing tidy
      d = dftMatrices(grid, this.config.fno_n_modes);
      for (const t of Object.values(d)) if (t instanceof tf.Tensor) tf.keep(t);
      this.#dft.set(key, d);
    }
    return d;
  }

  /**
   * Computes the geometry of a patch: embeddings and neighbour lists of both GNOs. `points` flat [N, 3], `latent`
   * flat [G1 * G2 * G3, 3] in ij order (z fastest), `grid` = [G1, G2, G3].
   */
  geometry(points: ArrayLike<number>, latent: ArrayLike<number>, grid: number[]): GinoGeometry {
    const c = this.config;
    const n = points.length / 3, q = latent.length / 3;
    if (q !== grid[0] * grid[1] * grid[2]) {
      throw new Error(`latent queries hold ${q} nodes, grid ${grid} needs ${grid[0] * grid[1] * grid[2]}`);
    }
    const inNb = radiusSearch(points, latent, c.in_gno_radius); // per latent node: points
    const outNb = c.out_gno_radius === c.in_gno_radius
      ? transpose(inNb, n)
      : radiusSearch(latent, points, c.out_gno_radius);
    const counts = (rs: Int32Array) => {
      const inv = new Float32Array(rs.length - 1);
      for (let i = 0; i < inv.length; i++) inv[i] = 1 / Math.max(1, rs[i + 1] - rs[i]);
      return inv;
    };
    const embIn = 3 * 2 * c.in_gno_pos_embed_channels, embOut = 3 * 2 * c.out_gno_pos_embed_channels;
    // Only latent nodes that have an edge need an embedding: keep those rows (numerically the same, far less memory
    // on large grids) and index them through compact edge indices.
    const inDst = edgeQueries(inNb);
    const [inUsed, inDstCompact] = compact(inDst, q);
    const [outUsed, outSrcCompact] = compact(outNb.index, q);
    const rows = (flat: ArrayLike<number>, used: Int32Array) => {
      const out = new Float32Array(used.length * 3);
      used.forEach((u, i) => out.set([flat[u * 3], flat[u * 3 + 1], flat[u * 3 + 2]], i * 3));
      return out;
    };
    const h: GeometryHost = {
      inEmbP: sinusoidalEmbedding(points, c.in_gno_pos_embed_channels, c.in_gno_pos_embed_max_positions),
      inEmbL: sinusoidalEmbedding(
        rows(latent, inUsed),
        c.in_gno_pos_embed_channels,
        c.in_gno_pos_embed_max_positions,
      ),
      outEmbP: sinusoidalEmbedding(points, c.out_gno_pos_embed_channels, c.out_gno_pos_embed_max_positions),
      outEmbL: sinusoidalEmbedding(
        rows(latent, outUsed),
        c.out_gno_pos_embed_channels,
        c.out_gno_pos_embed_max_positions,
      ),
      inSrc: inNb.index,
      inDst,
      inDstCompact,
      inRowSplits: inNb.rowSplits,
      inInvCount: counts(inNb.rowSplits),
      outSrc: outNb.index,
      outSrcCompact,
      outDst: edgeQueries(outNb),
      outRowSplits: outNb.rowSplits,
      outInvCount: c.out_gno_reduction === "mean" ? counts(outNb.rowSplits) : undefined,
      inUsed: inUsed.length,
      outUsed: outUsed.length,
    };
    const g: GinoGeometry = {
      n,
      grid: [...grid],
      inEmbP: tf.tensor2d(h.inEmbP, [n, embIn]),
      inEmbL: tf.tensor2d(h.inEmbL, [inUsed.length, embIn]),
      outEmbP: tf.tensor2d(h.outEmbP, [n, embOut]),
      outEmbL: tf.tensor2d(h.outEmbL, [outUsed.length, embOut]),
      inSrc: tf.tensor1d(h.inSrc, "int32"),
      inDst: tf.tensor1d(h.inDst, "int32"),
      inDstCompact: tf.tensor1d(h.inDstCompact, "int32"),
      inInvCount: tf.tensor2d(h.inInvCount, [q, 1]),
      outSrc: tf.tensor1d(h.outSrc, "int32"),
      outSrcCompact: tf.tensor1d(h.outSrcCompact, "int32"),
      outDst: tf.tensor1d(h.outDst, "int32"),
      outInvCount: h.outInvCount ? tf.tensor2d(h.outInvCount, [n, 1]) : undefined,
      host: h,
      stats: { in: neighborStats(inNb), out: neighborStats(outNb) },
      dispose() {
        for (
          const t of [
            this.inEmbP,
            this.inEmbL,
            this.outEmbP,
            this.outEmbL,
            this.inSrc,
            this.inDst,
            this.inDstCompact,
            this.inInvCount,
            this.outSrc,
            this.outSrcCompact,
            this.outDst,
            this.outInvCount,
          ]
        ) t?.dispose();
      },
    };
    return g;
  }

  /** Kernel MLP on edges: first layer per node, gathered per edge. Returns [E, out]. */
  #kernel(
    prefix: string,
    layers: number,
    embNbr: tf.Tensor2D,
    embQuery: tf.Tensor2D,
    nbrIdx: tf.Tensor1D,
    queryIdx: tf.Tensor1D,
  ): tf.Tensor2D {
    const w0 = this.v(`${prefix}.fcs.0.weight`);
    const half = embNbr.shape[1];
    const wn = w0.slice([0, 0], [half, -1]), wq = w0.slice([half, 0], [half, -1]);
    const an = tf.matMul(embNbr, wn), aq = tf.matMul(embQuery, wq);
    let h: tf.Tensor2D = tf.add(
      tf.add(gatherRows(an, nbrIdx), gatherRows(aq, queryIdx)),
      this.v(`${prefix}.fcs.0.bias`),
    );
    for (let i = 1; i < layers; i++) {
      h = gelu(h) as tf.Tensor2D;
      h = tf.add(tf.matMul(h, this.v(`${prefix}.fcs.${i}.weight`)), this.v(`${prefix}.fcs.${i}.bias`));
    }
    return h;
  }

  #layers(gno: string): number {
    return this.params.filter((p) =>
      p.name.startsWith(`${gno}.integral_transform.channel_mlp.fcs.`) && p.name.endsWith(".weight")
    ).length;
  }

  /** Pointwise dense layer on the last axis. */
  #dense(x: tf.Tensor, prefix: string): tf.Tensor {
    const shape = x.shape;
    const w = this.v(`${prefix}.weight`);
    const y = tf.add(tf.matMul(x.reshape([-1, shape[shape.length - 1]]), w), this.v(`${prefix}.bias`));
    return y.reshape([...shape.slice(0, -1), w.shape[1] as number]);
  }

  /** Forward pass on a prepared geometry: x [B, N, in_gno_out_channels] -> [B, N, out_channels]. */
  forwardGeometry(g: GinoGeometry, x: tf.Tensor3D): tf.Tensor3D {
    const c = this.config;
    const [b, n, cin] = x.shape;
    if (n !== g.n) throw new Error(`x has ${n} points, the geometry ${g.n}`);
    if (cin !== c.in_gno_out_channels) {
      throw new Error(
        `x has ${cin} channels, the model expects in_gno_out_channels = ${c.in_gno_out_channels}`,
      );
    }
    const [g1, g2, g3] = g.grid;
    const q = g1 * g2 * g3;
    const C = c.fno_hidden_channels;
    return tf.tidy(() => {
      // input GNO: a[b, q] = mean_j k(q, j) * x[b, j]
      const kIn = part("in GNO kernel MLP", () =>
        this.#kernel(
          "in_gno.integral_transform.channel_mlp",
          this.#layers("in_gno"),
          g.inEmbP,
          g.inEmbL,
          g.inSrc,
          g.inDstCompact,
        ));
      let h = part("in GNO reduction", () => {
        const xt = x.transpose([1, 0, 2]) as tf.Tensor3D; // [N, B, Cin]
        const a = tf.mul(edgeReduce(kIn, xt, g.inSrc, g.inDst, q), g.inInvCount.reshape([q, 1, 1])); // [Q, B, Cin]
        return a.transpose([1, 0, 2]).reshape([b, g1, g2, g3, cin]) as tf.Tensor;
      });
      h = part("lifting", () => this.#dense(gelu(this.#dense(h, "lifting.fcs.0")), "lifting.fcs.1"));
      // FNO blocks
      const fused = hasFnoLayerKernel();
      const d = fused ? undefined : this.#dftFor(g.grid);
      for (let l = 0; l < c.fno_n_layers; l++) {
        const wr = this.v(`fno_blocks.convs.${l}.weight.0.tensor`, 0);
        const wi = this.v(`fno_blocks.convs.${l}.weight.0.tensor`, 1);
        const skipW = this.v(`fno_blocks.fno_skips.${l}.weight`), bias = this.v(`fno_blocks.convs.${l}.bias`);
        const last = l === c.fno_n_layers - 1;
        if (!d) {
          const pre = part(
            `FNO ${l} spectral conv, skip, bias`,
            () => fnoLayer(h, wr, wi, skipW, bias, c.fno_n_modes),
          );
          h = last ? pre : part(`FNO ${l} GELU`, () => gelu(pre));
          continue;
        }
        const spec = part(`FNO ${l} spectral conv`, () => spectralConv(h, wr, wi, d));
        const skip = part(
          `FNO ${l} skip`,
          () => tf.matMul(h.reshape([-1, C]), skipW).reshape([b, g1, g2, g3, C]),
        );
        h = part(`FNO ${l} bias, add, GELU`, () => {
          const sum = tf.add(tf.add(spec, bias), skip);
          return last ? sum : gelu(sum);
        });
      }
      // output GNO: o[b, n] = sum_q k(n, q) * lat[b, q]
      const kOut = part("out GNO kernel MLP", () =>
        this.#kernel(
          "out_gno.integral_transform.channel_mlp",
          this.#layers("out_gno"),
          g.outEmbL,
          g.outEmbP,
          g.outSrcCompact,
          g.outDst,
        ));
      const o = part("out GNO reduction", () => {
        const lat = h.reshape([b, q, C]).transpose([1, 0, 2]) as tf.Tensor3D; // [Q, B, C]
        let o = edgeReduce(kOut, lat, g.outSrc, g.outDst, n); // [N, B, C]
        if (g.outInvCount) o = tf.mul(o, g.outInvCount.reshape([n, 1, 1]));
        return o.transpose([1, 0, 2]) as tf.Tensor; // [B, N, C]
      });
      return part(
        "projection",
        () => this.#dense(gelu(this.#dense(o, "projection.fcs.0")), "projection.fcs.1"),
      ) as tf.Tensor3D;
    });
  }

  /**
   * Forward pass as the reference is called: point coordinates [N, 3], latent queries [G1, G2, G3, 3], x [B, N, Tin]
   * -> [B, N, Tout]. Computes the geometry on every call; training reuses {@linkcode geometry} per patch instead.
   */
  forward(pointCoords: tf.Tensor2D, latentQueries: tf.Tensor4D, x: tf.Tensor3D): tf.Tensor3D {
    const pts = pointCoords.squeeze().dataSync() as Float32Array;
    const lat = latentQueries.dataSync() as Float32Array;
    const s = latentQueries.shape as number[];
    const grid = s.length === 5 ? s.slice(1, 4) : s.slice(0, 3);
    const g = this.geometry(pts, lat, grid);
    try {
      return this.forwardGeometry(g, x);
    } finally {
      g.dispose();
    }
  }

  /** Frees every tensor of the model. */
  dispose(): void {
    for (const p of this.params) for (const v of p.vars) v.dispose();
    for (const d of this.#dft.values()) disposeDft(d);
    this.#dft.clear();
  }
}

/**
 * Widths of a GNO kernel MLP as the reference builds them: the kernel input width is prepended unless the list
 * starts with it, the output width appended unless the list ends with it.
 */
export function kernelWidths(layers: number[], kernelIn: number, out: number): number[] {
  const w = layers[0] === kernelIn ? [...layers] : [kernelIn, ...layers];
  if (w[w.length - 1] !== out) w.push(out);
  return w;
}

/** Sorted unique values of `idx` (all < n) and `idx` renumbered as positions in that list. */
function compact(idx: Int32Array, n: number): [Int32Array, Int32Array] {
  const pos = new Int32Array(n).fill(-1);
  for (const i of idx) pos[i] = 0;
  let k = 0;
  for (let i = 0; i < n; i++) if (pos[i] === 0) pos[i] = k++;
  const used = new Int32Array(k);
  for (let i = 0; i < n; i++) if (pos[i] >= 0) used[pos[i]] = i;
  return [used, idx.map((i) => pos[i])];
}

/** CSR transpose: from per-query lists over `nData` data items to per-data lists over the queries. */
function transpose(nb: { rowSplits: Int32Array; index: Int32Array }, nData: number) {
  const counts = new Int32Array(nData + 1);
  for (const j of nb.index) counts[j + 1]++;
  for (let i = 0; i < nData; i++) counts[i + 1] += counts[i];
  const fill = counts.slice(0, nData);
  const index = new Int32Array(nb.index.length);
  for (let qq = 0; qq + 1 < nb.rowSplits.length; qq++) {
    for (let e = nb.rowSplits[qq]; e < nb.rowSplits[qq + 1]; e++) index[fill[nb.index[e]]++] = qq;
  }
  return { rowSplits: counts, index };
}

/** PyTorch layout -> our variables' layouts. */
export function fromTorch(p: ParamSpec, t: Float32Array): Float32Array[] {
  switch (p.kind) {
    case "bias":
    case "specbias":
      return [t];
    case "linear":
    case "conv": {
      const [cout, cin] = p.torchShape;
      const w = new Float32Array(cin * cout);
      for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) w[i * cout + o] = t[o * cin + i];
      return [w];
    }
    case "spectral": {
      const [cin, cout, mx, my, mz] = p.torchShape;
      const m = mx * my * mz;
      const re = new Float32Array(m * cin * cout), im = new Float32Array(m * cin * cout);
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) {
          for (let k = 0; k < m; k++) {
            const src = ((i * cout + o) * m + k) * 2, dst = (k * cin + i) * cout + o;
            re[dst] = t[src];
            im[dst] = t[src + 1];
          }
        }
      }
      return [re, im];
    }
  }
}

/** Our variables' layouts -> PyTorch layout. */
export function toTorch(p: ParamSpec, parts: Float32Array[]): Float32Array {
  switch (p.kind) {
    case "bias":
    case "specbias":
      return Float32Array.from(parts[0]);
    case "linear":
    case "conv": {
      const [cout, cin] = p.torchShape;
      const t = new Float32Array(cin * cout);
      for (let o = 0; o < cout; o++) for (let i = 0; i < cin; i++) t[o * cin + i] = parts[0][i * cout + o];
      return t;
    }
    case "spectral": {
      const [cin, cout, mx, my, mz] = p.torchShape;
      const m = mx * my * mz;
      const t = new Float32Array(cin * cout * m * 2);
      for (let i = 0; i < cin; i++) {
        for (let o = 0; o < cout; o++) {
          for (let k = 0; k < m; k++) {
            const dst = ((i * cout + o) * m + k) * 2, src = (k * cin + i) * cout + o;
            t[dst] = parts[0][src];
            t[dst + 1] = parts[1][src];
          }
        }
      }
      return t;
    }
  }
}

/** Creates a GINO from the reference constructor's keyword arguments (missing keys: reference defaults). */
export function createGino(config: Partial<GinoConfig> & Record<string, unknown> = {}, seed = 0): Gino {
  return new Gino(config, seed);
}

/**
 * The reference loss: relative L2 over the output window per (sample, point), averaged over samples and the first
 * `coreLen` points. `eps` (default 0, the reference) is added to the denominator. A point predicted exactly has
 * a zero gradient (the norm is taken of the squared error plus 1e-30, which changes no other value in float32;
 * the plain norm's gradient is 0/0 there, which a residual model starting at its base forecast meets at once).
 */
export function relativeL2Loss(pred: tf.Tensor3D, target: tf.Tensor3D, coreLen: number, eps = 0): tf.Scalar {
  return tf.tidy(() => {
    const p = pred.slice([0, 0, 0], [-1, coreLen, -1]);
    const y = target.slice([0, 0, 0], [-1, coreLen, -1]);
    const num = tf.sqrt(tf.add(tf.sum(tf.square(tf.sub(p, y)), -1), 1e-30));
    let den = tf.sqrt(tf.sum(tf.square(y), -1));
    if (eps > 0) den = tf.add(den, eps);
    return tf.mean(tf.div(num, den));
  });
}
