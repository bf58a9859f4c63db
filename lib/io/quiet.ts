/**
 * Native libraries that talk on stderr while being probed: a GPU driver stack asked for an adapter it may not be
 * able to give (Wayland's "XDG_RUNTIME_DIR is invalid or not set", EGL loader warnings) prints from C, around the
 * runtime's console. {@linkcode withoutNativeStderr} points file descriptor 2 at `/dev/null` for the length of a
 * probe and back after it, through the C library (`--allow-ffi`); without FFI or a C library it runs the probe
 * as it is.
 *
 * @module
 */

const SYMBOLS = {
  dup: { parameters: ["i32"], result: "i32" },
  dup2: { parameters: ["i32", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>;
let libc: Libc | null | undefined;

function loadLibc(): Libc | null {
  if (libc !== undefined) return libc;
  libc = null;
  const names = Deno.build.os === "darwin" ? ["libSystem.B.dylib"] : ["libc.so.6", "libc.so"];
  for (const name of names) {
    try {
      libc = Deno.dlopen(name, SYMBOLS);
      break;
    } catch {
      // no FFI permission, or not this name
    }
  }
  return libc;
}

/**
 * Runs `probe` with stderr (fd 2) sent to `/dev/null`, for the probe's whole length (the runtime's own stderr
 * writes included: nothing else should speak meanwhile), and restores it however the probe ends.
 */
export async function withoutNativeStderr<T>(probe: () => Promise<T>): Promise<T> {
  const c = Deno.build.os === "windows" ? null : loadLibc();
  if (!c) return await probe();
  const saved = c.symbols.dup(2);
  const devnull = c.symbols.open(new TextEncoder().encode("/dev/null\0"), 1 /* O_WRONLY */);
  if (saved < 0 || devnull < 0 || c.symbols.dup2(devnull, 2) < 0) {
    if (saved >= 0) c.symbols.close(saved);
    if (devnull >= 0) c.symbols.close(devnull);
    return await probe();
  }
  c.symbols.close(devnull);
  try {
    return await probe();
  } finally {
    c.symbols.dup2(saved, 2);
    c.symbols.close(saved);
  }
}
