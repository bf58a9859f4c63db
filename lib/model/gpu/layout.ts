/**
 * Where the GPU engine keeps things: the model's parameters in one flat buffer (each weight followed directly by
 * its bias, so one GEMM with a column of ones computes both gradients; blocks aligned to 64 floats), the truncated
 * DFT tables of a latent grid, a patch geometry's arrays (embeddings, edges, CSR lists) and the model's dimensions.
 *
 * @module
 */

import type { GeometryHost, Gino, GinoGeometry } from "../gino.ts";
import { kernelWidths } from "../gino.ts";
import { keptFrequencies, keptModeCounts } from "../spectral.ts";
import type { GinoConfig } from "../config.ts";

/** A parameter block: variables placed one after another. */
interface Block {
  names: [string, number][];
}

/** The flat parameter layout: the offset (in floats) of every variable of the model. */
export interface ParamLayout {
  /** Total floats (padding included). */
  size: number;
  /** Offset of each variable, in `model.variables` order. */
  offsets: number[];
  /** Element counts, same order. */
  sizes: number[];
  /** Offset of a parameter by reference name (index 1: the imaginary part of a spectral weight). */
  at(name: string, part?: number): number;
}

/** The flat layout of `model`'s parameters (see the module documentation). */
export function paramLayout(model: Gino): ParamLayout {
  const c = model.config;
  const blocks: Block[] = [];
  const dense = (prefix: string) => blocks.push({ names: [[`${prefix}.weight`, 0], [`${prefix}.bias`, 0]] });
  for (const g of ["in_gno", "out_gno"]) {
    const layers = model.params.filter((p) =>
      p.name.startsWith(`${g}.integral_transform.channel_mlp.fcs.`) && p.name.endsWith(".weight")
    ).length;
    for (let i = 0; i < layers; i++) {
      dense(`${g}.integral_transform.channel_mlp.fcs.${i}`);
    }
  }
  dense("lifting.fcs.0");
  dense("lifting.fcs.1");
  for (let l = 0; l < c.fno_n_layers; l++) {
    blocks.push({ names: [[`fno_blocks.fno_skips.${l}.weight`, 0], [`fno_blocks.convs.${l}.bias`, 0]] });
    blocks.push({
      names: [[`fno_blocks.convs.${l}.weight.0.tensor`, 0], [`fno_blocks.convs.${l}.weight.0.tensor`, 1]],
    });
  }
  dense("projection.fcs.0");
  dense("projection.fcs.1");
  const byName = new Map<string, number>();
  let at = 0;
  for (const b of blocks) {
    at = Math.ceil(at / 64) * 64;
    for (const [name, part] of b.names) {
      const v = model.v(name, part);
      byName.set(`${name}#${part}`, at);
      at += v.size;
    }
  }
  const vars = model.params.flatMap((p) => p.vars.map((v, i) => ({ key: `${p.name}#${i}`, v })));
  const offsets = vars.map(({ key }) => {
    const o = byName.get(key);
    if (o === undefined) throw new Error(`the GPU engine has no place for parameter ${key}`);
    return o;
  });
  if (byName.size !== vars.length) {
    throw new Error("the GPU engine's parameter layout does not match the model");
  }
  return {
    size: Math.ceil(at / 64) * 64,
    offsets,
    sizes: vars.map(({ v }) => v.size),
    at(name: string, part = 0) {
      const o = byName.get(`${name}#${part}`);
      if (o === undefined) throw new Error(`no parameter ${name}`);
      return o;
    },
  };
}

/** The dimensions the engine plans with: the model's widths and a patch's sizes. */
export interface Dims {
  /** Points, latent nodes, grid. */
  N: number;
  Q: number;
  grid: [number, number, number];
  /** Kept modes per axis and their product. */
  modes: [number, number, number];
  M: number;
  /** Input channels, lifting width, FNO width, projection width, output channels. */
  Cin: number;
  Lc: number;
  C: number;
  P: number;
  Cout: number;
  /** Kernel MLP widths of the input and output GNO (first: 2 x embedding width). */
  wIn: number[];
  wOut: number[];
  /** FNO layers. */
  layers: number;
  /** Edges of both GNOs, and latent nodes with an edge. */
  Ein: number;
  Eout: number;
  inUsed: number;
  outUsed: number;
  /** Output GNO reduction is a mean. */
  outMean: boolean;
}

/** Dimensions of `config` on `geom`. */
export function dimsOf(c: GinoConfig, geom: GinoGeometry): Dims {
  const [g1, g2, g3] = geom.grid;
  const modes = keptModeCounts(c.fno_n_modes);
  const C = c.fno_hidden_channels;
  const h = geom.host;
  return {
    N: geom.n,
    Q: g1 * g2 * g3,
    grid: [g1, g2, g3],
    modes,
    M: modes[0] * modes[1] * modes[2],
    Cin: c.in_gno_out_channels,
    Lc: c.lifting_channels,
    C,
    P: c.projection_channel_ratio * C,
    Cout: c.out_channels,
    wIn: kernelWidths(
      c.in_gno_channel_mlp_layers,
      2 * 3 * 2 * c.in_gno_pos_embed_channels,
      c.in_gno_out_channels,
    ),
    wOut: kernelWidths(c.out_gno_channel_mlp_layers, 2 * 3 * 2 * c.out_gno_pos_embed_channels, C),
    layers: c.fno_n_layers,
    Ein: h.inSrc.length,
    Eout: h.outSrc.length,
    inUsed: h.inUsed,
    outUsed: h.outUsed,
    outMean: c.out_gno_reduction === "mean",
  };
}

/** Offsets of the twelve DFT tables of a grid in one array (each: cos part [P, Q], then sin part). */
export interface DftTables {
  data: Float32Array;
  /** Forward z (real in), y, x; inverse x, y, z (real out, with the rfft weights). */
  fz: number;
  fy: number;
  fx: number;
  ix: number;
  iy: number;
  iz: number;
  /** Their adjoints (conjugate transposes), for the backward pass. */
  afz: number;
  afy: number;
  afx: number;
  aix: number;
  aiy: number;
  aiz: number;
}

/** The DFT tables of grid [G1, G2, G3] for the reference's `n_modes` (as `spectral.ts`, in float64 then float32). */
export function dftTables(grid: number[], nModes: number[]): DftTables {
  const [g1, g2, g3] = grid;
  const [mx, my, mz] = keptModeCounts(nModes);
  const fx = keptFrequencies(g1, mx), fy = keptFrequencies(g2, my);
  const fz = Array.from({ length: mz }, (_, k) => k);
  const parts: number[][] = [];
  const offsets: number[] = [];
  let at = 0;
  const add = (
    P: number,
    Q: number,
    cos: (p: number, q: number) => number,
    sin: (p: number, q: number) => number,
  ) => {
    const a = new Array<number>(2 * P * Q);
    for (let p = 0; p < P; p++) {
      for (let q = 0; q < Q; q++) {
        a[p * Q + q] = cos(p, q);
        a[P * Q + p * Q + q] = sin(p, q);
      }
    }
    parts.push(a);
    offsets.push(at);
    at += a.length;
    return { P, Q, cos, sin };
  };
  const th = (f: number, x: number, g: number) => (2 * Math.PI * f * x) / g;
  const s = 1 / (g1 * g2 * g3);
  const wz = (k: number) => (fz[k] === 0 || 2 * fz[k] === g3 ? 1 : 2);
  // forward: [modes, G], e^{-i theta} (scaled along z)
  const tz = add(mz, g3, (p, q) => s * Math.cos(th(fz[p], q, g3)), (p, q) => -s * Math.sin(th(fz[p], q, g3)));
  const ty = add(my, g2, (p, q) => Math.cos(th(fy[p], q, g2)), (p, q) => -Math.sin(th(fy[p], q, g2)));
  const tx = add(mx, g1, (p, q) => Math.cos(th(fx[p], q, g1)), (p, q) => -Math.sin(th(fx[p], q, g1)));
  // inverse: [G, modes], e^{+i theta} (with the rfft weights along z)
  const ux = add(g1, mx, (p, q) => Math.cos(th(fx[q], p, g1)), (p, q) => Math.sin(th(fx[q], p, g1)));
  const uy = add(g2, my, (p, q) => Math.cos(th(fy[q], p, g2)), (p, q) => Math.sin(th(fy[q], p, g2)));
  const uz = add(
    g3,
    mz,
    (p, q) => wz(q) * Math.cos(th(fz[q], p, g3)),
    (p, q) => wz(q) * Math.sin(th(fz[q], p, g3)),
  );
  // adjoints: conjugate transposes
  const adj = (t: { P: number; Q: number; cos: (p: number, q: number) => number; sin: typeof t.cos }) =>
    add(t.Q, t.P, (p, q) => t.cos(q, p), (p, q) => -t.sin(q, p));
  for (const t of [tz, ty, tx, ux, uy, uz]) adj(t);
  const data = new Float32Array(at);
  parts.forEach((p, i) => data.set(p, offsets[i]));
  const [ofz, ofy, ofx, oix, oiy, oiz, aofz, aofy, aofx, aoix, aoiy, aoiz] = offsets;
  return {
    data,
    fz: ofz,
    fy: ofy,
    fx: ofx,
    ix: oix,
    iy: oiy,
    iz: oiz,
    afz: aofz,
    afy: aofy,
    afx: aofx,
    aix: aoix,
    aiy: aoiy,
    aiz: aoiz,
  };
}

/** A CSR grouping of edges by an index: `perm` lists the edges of group j at `rs[j] .. rs[j+1]` (stable). */
export function csrOf(idx: Int32Array, groups: number): { perm: Int32Array; rs: Int32Array } {
  const rs = new Int32Array(groups + 1);
  for (const j of idx) rs[j + 1]++;
  for (let j = 0; j < groups; j++) rs[j + 1] += rs[j];
  const fill = rs.slice(0, groups);
  const perm = new Int32Array(idx.length);
  for (let e = 0; e < idx.length; e++) perm[fill[idx[e]]++] = e;
  return { perm, rs };
}

/** A geometry's arrays packed for the GPU: floats (embeddings, inverse counts) and indices, with offsets. */
export interface GeometryPack {
  floats: Float32Array;
  ints: Uint32Array;
  f: Record<"inEmbP" | "inEmbL" | "outEmbP" | "outEmbL" | "inInv" | "outInv", number>;
  i: Record<
    | "inSrc"
    | "inDst"
    | "inDstC"
    | "inRs"
    | "inBySrcPerm"
    | "inBySrcRs"
    | "inByQPerm"
    | "inByQRs"
    | "outSrc"
    | "outSrcC"
    | "outDst"
    | "outRs"
    | "outBySrcPerm"
    | "outBySrcRs"
    | "outBySrcCRs"
    | "outByDstPerm"
    | "outByDstRs",
    number
  >;
}

/** Packs a geometry's host arrays (see {@linkcode GeometryPack}). */
export function packGeometry(h: GeometryHost, n: number, q: number): GeometryPack {
  const fl: [string, Float32Array][] = [
    ["inEmbP", h.inEmbP],
    ["inEmbL", h.inEmbL],
    ["outEmbP", h.outEmbP],
    ["outEmbL", h.outEmbL],
    ["inInv", h.inInvCount],
    ["outInv", h.outInvCount ?? new Float32Array(0)],
  ];
  const inBySrc = csrOf(h.inSrc, n), inByQ = csrOf(h.inDstCompact, h.inUsed);
  const outBySrc = csrOf(h.outSrc, q), outBySrcC = csrOf(h.outSrcCompact, h.outUsed);
  const outByDst = csrOf(h.outDst, n);
  const il: [string, Int32Array][] = [
    ["inSrc", h.inSrc],
    ["inDst", h.inDst],
    ["inDstC", h.inDstCompact],
    ["inRs", h.inRowSplits],
    ["inBySrcPerm", inBySrc.perm],
    ["inBySrcRs", inBySrc.rs],
    ["inByQPerm", inByQ.perm],
    ["inByQRs", inByQ.rs],
    ["outSrc", h.outSrc],
    ["outSrcC", h.outSrcCompact],
    ["outDst", h.outDst],
    ["outRs", h.outRowSplits],
    ["outBySrcPerm", outBySrc.perm],
    ["outBySrcRs", outBySrc.rs],
    ["outBySrcCRs", outBySrcC.rs],
    ["outByDstPerm", outByDst.perm],
    ["outByDstRs", outByDst.rs],
  ];
  const pack = <T extends Float32Array | Uint32Array>(
    list: [string, ArrayLike<number>][],
    make: (n: number) => T,
  ) => {
    const off: Record<string, number> = {};
    let at = 0;
    for (const [k, a] of list) {
      off[k] = at;
      at += a.length;
    }
    const out = make(Math.max(at, 4));
    for (const [k, a] of list) out.set(a, off[k]);
    return { out, off };
  };
  const F = pack(fl, (k) => new Float32Array(k)), I = pack(il, (k) => new Uint32Array(k));
  return { floats: F.out, ints: I.out, f: F.off as GeometryPack["f"], i: I.off as GeometryPack["i"] };
}
