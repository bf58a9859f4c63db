/**
 * The system BLAS `cblas_sgemm` through `Deno.dlopen` (needs `--allow-ffi`): OpenBLAS, MKL, Apple Accelerate, or the
 * library named by the environment variable `GINO_GW_BLAS`.
 *
 * @module
 */

/** A loaded BLAS. */
export interface Blas {
  /** The library file that was opened. */
  library: string;
  /**
   * C = op(A) op(B) + beta C, row-major, float32: op(A) is [m, k], op(B) is [k, n], C is [m, n]. `transA` means
   * A is stored as [k, m]; `transB` means B is stored as [n, k]. `beta` is 0 (overwrite) unless given.
   */
  sgemm(
    transA: boolean,
    transB: boolean,
    m: number,
    n: number,
    k: number,
    a: Float32Array,
    b: Float32Array,
    c: Float32Array,
    beta?: number,
  ): void;
  /** Closes the library. */
  close(): void;
}

const CANDIDATES = [
  "libopenblas.so.0",
  "libopenblas.so",
  "libopenblasp-r0.so",
  "libmkl_rt.so",
  "libmkl_rt.so.2",
  "libopenblas.dylib",
  "/System/Library/Frameworks/Accelerate.framework/Accelerate",
  "libopenblas.dll",
];

const SYMBOLS = {
  cblas_sgemm: {
    parameters: [
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "i32",
      "f32",
      "buffer",
      "i32",
      "buffer",
      "i32",
      "f32",
      "buffer",
      "i32",
    ],
    result: "void",
  },
} as const;

/** Floating-point operations of every sgemm call so far (2 m n k each), for profiles. */
export const blasStats: { flops: number } = { flops: 0 };

const ROW_MAJOR = 101, NO_TRANS = 111, TRANS = 112;

/**
 * Opens the first BLAS library that can be loaded. Throws (with the reason) when none can: no library, or no
 * FFI permission.
 */
export function openBlas(): Blas {
  const env = (() => {
    try {
      return Deno.env.get("GINO_GW_BLAS");
    } catch {
      return undefined;
    }
  })();
  if (env === "none" || env === "off") throw new Error("disabled by GINO_GW_BLAS");
  const names = env ? [env] : CANDIDATES;
  const errors: string[] = [];
  for (const name of names) {
    try {
      const lib = Deno.dlopen(name, SYMBOLS);
      const f = lib.symbols.cblas_sgemm;
      return {
        library: name,
        sgemm(transA, transB, m, n, k, a, b, c, beta = 0) {
          if (m === 0 || n === 0) return;
          if (k === 0) {
            if (beta === 0) c.subarray(0, m * n).fill(0);
            return;
          }
          blasStats.flops += 2 * m * n * k;
          f(
            ROW_MAJOR,
            transA ? TRANS : NO_TRANS,
            transB ? TRANS : NO_TRANS,
            m,
            n,
            k,
            1,
            a as Float32Array<ArrayBuffer>,
            transA ? m : k,
            b as Float32Array<ArrayBuffer>,
            transB ? k : n,
            beta,
            c as Float32Array<ArrayBuffer>,
            n,
          );
        },
        close: () => lib.close(),
      };
    } catch (e) {
      if (e instanceof Deno.errors.PermissionDenied || (e as Error).name === "NotCapable") {
        throw new Error("FFI is not allowed (run with --allow-ffi)");
      }
      errors.push(name);
    }
  }
  throw new Error(
    `no BLAS library found (tried ${errors.join(", ")}; set GINO_GW_BLAS to the library's path)`,
  );
}

/**
 * How to install a system BLAS here: the package manager's command for this Linux distribution (from
 * /etc/os-release), a cluster module hint, or what macOS and other systems need.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { blasInstallHint } from "./blas.ts";
 * assert.match(blasInstallHint("ID=debian\n"), /apt-get install libopenblas0-pthread/);
 * assert.match(blasInstallHint("ID=fedora\n"), /dnf install openblas/);
 * ```
 */
export function blasInstallHint(osRelease?: string): string {
  const env = "or name the library with GINO_GW_BLAS=/path/to/libopenblas.so";
  if (Deno.build.os === "darwin") return `Apple's Accelerate framework should be found automatically; ${env}`;
  if (Deno.build.os === "windows") return `install OpenBLAS (libopenblas.dll on the PATH), ${env}`;
  let text = osRelease;
  if (text === undefined) {
    try {
      text = Deno.readTextFileSync("/etc/os-release");
    } catch {
      text = "";
    }
  }
  const ids = (text.match(/^ID(?:_LIKE)?=(.*)$/gm) ?? []).join(" ").toLowerCase();
  const cmd = /debian|ubuntu/.test(ids)
    ? "apt-get install libopenblas0-pthread"
    : /fedora|rhel|centos|rocky|alma/.test(ids)
    ? "dnf install openblas"
    : /suse/.test(ids)
    ? "zypper install libopenblas_pthreads0"
    : /arch/.test(ids)
    ? "pacman -S openblas"
    : /alpine/.test(ids)
    ? "apk add openblas"
    : "install OpenBLAS with the system's package manager";
  return `${cmd} (on a cluster: module load openblas), ${env}`;
}
