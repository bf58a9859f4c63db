/**
 * Elementwise loops in WebAssembly SIMD (f32x4) on the wasm backend's own memory: GELU with its derivative, and
 * the Adam update. The module is assembled here from its instructions (a few hundred bytes; no toolchain) and
 * imports the backend's `WebAssembly.Memory`, so it reads and writes tensors where they are, without copies.
 * JavaScript loops of the same formulas serve the `cpu` backend and the last n mod 4 elements.
 *
 * @module
 */

import { ERF_A } from "./erf.ts";

// ---- a minimal WebAssembly encoder ----------------------------------------------------------------------------

const I32 = 0x7f, F32 = 0x7d, V128 = 0x7b;

function uleb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n & 0x7f;
    n >>>= 7;
    if (n !== 0) b |= 0x80;
    out.push(b);
  } while (n !== 0);
  return out;
}

function sleb(n: number): number[] {
  const out: number[] = [];
  for (;;) {
    const b = n & 0x7f;
    n >>= 7;
    if ((n === 0 && (b & 0x40) === 0) || (n === -1 && (b & 0x40) !== 0)) {
      out.push(b);
      return out;
    }
    out.push(b | 0x80);
  }
}

const vec = (items: number[][]): number[] => [...uleb(items.length), ...items.flat()];
const name = (s: string): number[] => vec([...new TextEncoder().encode(s)].map((b) => [b]));
const section = (id: number, body: number[]): number[] => [id, ...uleb(body.length), ...body];

/** Instructions of a function body. */
class Code {
  bytes: number[] = [];
  get(i: number) {
    this.bytes.push(0x20, ...uleb(i));
    return this;
  }
  set(i: number) {
    this.bytes.push(0x21, ...uleb(i));
    return this;
  }
  tee(i: number) {
    this.bytes.push(0x22, ...uleb(i));
    return this;
  }
  i32(v: number) {
    this.bytes.push(0x41, ...sleb(v));
    return this;
  }
  /** A v128 with the same f32 in every lane. */
  f32x4(v: number) {
    const b = new Uint8Array(new Float32Array([v, v, v, v]).buffer);
    this.bytes.push(0xfd, ...uleb(0x0c), ...b);
    return this;
  }
  /** A v128 with the same u32 in every lane. */
  u32x4(v: number) {
    const b = new Uint8Array(new Uint32Array([v, v, v, v]).buffer);
    this.bytes.push(0xfd, ...uleb(0x0c), ...b);
    return this;
  }
  simd(op: number) {
    this.bytes.push(0xfd, ...uleb(op));
    return this;
  }
  load() {
    this.bytes.push(0xfd, ...uleb(0x00), 2, 0); // align 4 bytes, offset 0
    return this;
  }
  store() {
    this.bytes.push(0xfd, ...uleb(0x0b), 2, 0);
    return this;
  }
  op(...b: number[]) {
    this.bytes.push(...b);
    return this;
  }
}

const OP = {
  splat: 0x13,
  and: 0x4e,
  or: 0x50,
  abs: 0xe0,
  sqrt: 0xe3,
  add: 0xe4,
  sub: 0xe5,
  mul: 0xe6,
  div: 0xe7,
} as const;
const I32_ADD = 0x6a, I32_GE_U = 0x4f, BLOCK = 0x02, LOOP = 0x03, BR = 0x0c, BR_IF = 0x0d, END = 0x0b;
const VOID = 0x40;

/**
 * A loop over 16-byte groups: `ptrs` are the locals holding byte offsets, all advanced by 16 each round; the first
 * runs to the local `end`.
 */
function loop(c: Code, ptrs: number[], end: number, body: (c: Code) => void): void {
  c.op(BLOCK, VOID, LOOP, VOID);
  c.get(ptrs[0]).get(end).op(I32_GE_U, BR_IF, 1);
  body(c);
  for (const p of ptrs) c.get(p).i32(16).op(I32_ADD).set(p);
  c.op(BR, 0, END, END);
}

const [A1, A2, A3, A4, A5, A6] = ERF_A;

/** gelu(x, y, d, end): y = gelu(x), d = gelu'(x) for x in [x, end). */
function geluBody(): { params: number[]; locals: number[]; code: number[] } {
  const [X, Y, D, END_] = [0, 1, 2, 3];
  const [x, z, p, dp, t, inv, h] = [4, 5, 6, 7, 8, 9, 10];
  const c = new Code();
  const horner = (coef: number[]) => {
    // ((c0 z + c1) z + ...) from the highest coefficient
    c.f32x4(coef[0]);
    for (const k of coef.slice(1)) c.get(z).simd(OP.mul).f32x4(k).simd(OP.add);
  };
  loop(c, [X, Y, D], END_, (c) => {
    c.get(X).load().tee(x).simd(OP.abs).f32x4(Math.SQRT1_2).simd(OP.mul).set(z);
    horner([A6, A5, A4, A3, A2, A1, 1]);
    c.set(p);
    horner([6 * A6, 5 * A5, 4 * A4, 3 * A3, 2 * A2, A1]);
    c.set(dp);
    // p^16, its inverse, erf(|z|) = 1 - 1/p^16 with the sign of x
    c.get(p).get(p).simd(OP.mul).tee(t).get(t).simd(OP.mul).tee(t).get(t).simd(OP.mul).tee(t).get(t).simd(
      OP.mul,
    );
    c.set(t);
    c.f32x4(1).get(t).simd(OP.div).set(inv);
    c.f32x4(1).get(inv).simd(OP.sub).get(x).u32x4(0x80000000).simd(OP.and).simd(OP.or);
    // h = 0.5 (1 + erf)
    c.f32x4(0.5).simd(OP.mul).f32x4(0.5).simd(OP.add).set(h);
    c.get(Y).get(x).get(h).simd(OP.mul).store();
    // d = h + x * 16 dp inv / p * 0.5 / sqrt2
    c.get(D).get(h).get(x).get(dp).get(inv).simd(OP.mul).get(p).simd(OP.div).f32x4(8 * Math.SQRT1_2).simd(
      OP.mul,
    );
    c.simd(OP.mul).simd(OP.add).store();
  });
  return { params: [I32, I32, I32, I32], locals: Array(7).fill(V128), code: c.bytes };
}

/** adam(w, g, m, v, w2, m2, v2, end, b1, b2, eps, stepSize, sqrtBc2) over [w, end). */
function adamBody(): { params: number[]; locals: number[]; code: number[] } {
  const [W, G, M, V, W2, M2, V2, END_, B1, B2, EPS, SS, SB] = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
  const [b1, c1, b2, c2, eps, ss, sb, g, mi, vi] = [13, 14, 15, 16, 17, 18, 19, 20, 21, 22];
  const c = new Code();
  const splat = (from: number, to: number) => c.get(from).simd(OP.splat).set(to);
  splat(B1, b1);
  c.f32x4(1).get(b1).simd(OP.sub).set(c1);
  splat(B2, b2);
  c.f32x4(1).get(b2).simd(OP.sub).set(c2);
  splat(EPS, eps);
  splat(SS, ss);
  splat(SB, sb);
  loop(c, [W, G, M, V, W2, M2, V2], END_, (c) => {
    c.get(G).load().set(g);
    c.get(M2).get(b1).get(M).load().simd(OP.mul).get(c1).get(g).simd(OP.mul).simd(OP.add).tee(mi).store();
    c.get(V2).get(b2).get(V).load().simd(OP.mul).get(c2).get(g).simd(OP.mul).get(g).simd(OP.mul).simd(OP.add);
    c.tee(vi).store();
    // w - stepSize * m / (sqrt(v) / sqrtBc2 + eps)
    c.get(W2).get(W).load().get(ss).get(mi).simd(OP.mul).get(vi).simd(OP.sqrt).get(sb).simd(OP.div).get(eps);
    c.simd(OP.add).simd(OP.div).simd(OP.sub).store();
  });
  return {
    params: [I32, I32, I32, I32, I32, I32, I32, I32, F32, F32, F32, F32, F32],
    locals: Array(10).fill(V128),
    code: c.bytes,
  };
}

/** The module's bytes: imports env.memory, exports `gelu` and `adam`. */
export function simdModuleBytes(): Uint8Array {
  const fns = [geluBody(), adamBody()];
  const types = section(1, vec(fns.map((f) => [0x60, ...vec(f.params.map((p) => [p])), 0])));
  const imports = section(2, vec([[...name("env"), ...name("memory"), 0x02, 0x00, 0x00]]));
  const funcs = section(3, vec(fns.map((_, i) => [i])));
  const exports = section(7, vec([[...name("gelu"), 0x00, 0], [...name("adam"), 0x00, 1]]));
  const bodies = fns.map((f) => {
    const locals = vec(f.locals.map((t) => [1, t]));
    const body = [...locals, ...f.code, END];
    return [...uleb(body.length), ...body];
  });
  const code = section(10, vec(bodies));
  return new Uint8Array([
    0x00,
    0x61,
    0x73,
    0x6d,
    0x01,
    0x00,
    0x00,
    0x00,
    ...types,
    ...imports,
    ...funcs,
    ...exports,
    ...code,
  ]);
}

/** The SIMD loops bound to one memory. Offsets are in bytes; counts in elements. */
export interface SimdLoops {
  /** y = gelu(x), d = gelu'(x) for n elements. */
  gelu(x: number, y: number, d: number, n: number): void;
  /** One Adam update of n elements (see {@linkcode adamScalar}). */
  adam(
    ptr: { w: number; g: number; m: number; v: number; w2: number; m2: number; v2: number },
    n: number,
    k: { beta1: number; beta2: number; eps: number; stepSize: number; sqrtBc2: number },
  ): void;
}

const bound = new WeakMap<WebAssembly.Memory, SimdLoops | null>();

/** The loops on `memory`, or undefined when this runtime has no WebAssembly SIMD. */
export function simdLoops(memory: WebAssembly.Memory): SimdLoops | undefined {
  if (bound.has(memory)) return bound.get(memory) ?? undefined;
  let loops: SimdLoops | null = null;
  try {
    const mod = new WebAssembly.Module(simdModuleBytes() as Uint8Array<ArrayBuffer>);
    const inst = new WebAssembly.Instance(mod, { env: { memory } });
    const ex = inst.exports as Record<string, (...a: number[]) => void>;
    loops = {
      gelu(x, y, d, n) {
        const n4 = n & ~3;
        ex.gelu(x, y, d, x + 4 * n4);
        if (n4 < n) {
          const f = new Float32Array(memory.buffer);
          for (let i = n4; i < n; i++) {
            const [yv, dv] = geluScalar(f[x / 4 + i]);
            f[y / 4 + i] = yv;
            f[d / 4 + i] = dv;
          }
        }
      },
      adam(p, n, k) {
        const n4 = n & ~3;
        ex.adam(
          p.w,
          p.g,
          p.m,
          p.v,
          p.w2,
          p.m2,
          p.v2,
          p.w + 4 * n4,
          k.beta1,
          k.beta2,
          k.eps,
          k.stepSize,
          k.sqrtBc2,
        );
        const f = new Float32Array(memory.buffer);
        for (let i = n4; i < n; i++) {
          const [w, m, v] = adamScalar(f[p.w / 4 + i], f[p.g / 4 + i], f[p.m / 4 + i], f[p.v / 4 + i], k);
          f[p.w2 / 4 + i] = w;
          f[p.m2 / 4 + i] = m;
          f[p.v2 / 4 + i] = v;
        }
      },
    };
  } catch {
    loops = null;
  }
  bound.set(memory, loops);
  return loops ?? undefined;
}

/** gelu(x) and gelu'(x), the same formulas in JavaScript. */
export function geluScalar(v: number): [number, number] {
  const z = (v < 0 ? -v : v) * Math.SQRT1_2;
  const p = 1 + z * (A1 + z * (A2 + z * (A3 + z * (A4 + z * (A5 + z * A6)))));
  const dp = A1 + z * (2 * A2 + z * (3 * A3 + z * (4 * A4 + z * (5 * A5 + z * 6 * A6))));
  let p16 = p * p;
  p16 *= p16;
  p16 *= p16;
  p16 *= p16;
  const inv = 1 / p16;
  const h = 0.5 * (1 + (v < 0 ? inv - 1 : 1 - inv));
  return [v * h, h + v * ((dp * inv) / p) * 8 * Math.SQRT1_2];
}

/** One Adam update of one element: [w, m, v] after. */
export function adamScalar(
  w: number,
  g: number,
  m: number,
  v: number,
  k: { beta1: number; beta2: number; eps: number; stepSize: number; sqrtBc2: number },
): [number, number, number] {
  const m2 = k.beta1 * m + (1 - k.beta1) * g;
  const v2 = k.beta2 * v + (1 - k.beta2) * g * g;
  return [w - (k.stepSize * m2) / (Math.sqrt(v2) / k.sqrtBc2 + k.eps), m2, v2];
}
