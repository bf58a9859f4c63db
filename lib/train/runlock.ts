/**
 * The run lock: the file `.running` in a run folder, which a training session holds an exclusive OS file lock on
 * (flock) for as long as it lives. The operating system drops that lock when the process ends in any way (a kill
 * included), so "is anyone training this run?" is answered by trying the lock, not by guessing from process ids.
 * The file also says who holds or held the run (process id, host, session start) and when that session last
 * showed a sign of life (its heartbeat, rewritten at every epoch): a file left by a killed session tells when it
 * died. It keeps two sessions from training one run at once, and tells the checkpoint manager a run is running.
 *
 * On a file system without file locks the holder cannot be known; a lock file found there is taken over with a
 * warning.
 *
 * @module
 */

import type { RunLayout } from "./layout.ts";
import { ToolError } from "../errors.ts";
import { diskFullOr, writePoint } from "../io/disk_full.ts";

/** What the lock file holds. */
export interface RunLockInfo {
  /** Process id of the session. */
  pid: number;
  /** Host name of the session's machine. */
  host: string;
  /** Session start (ISO time): identifies the session in the run's records. */
  start: string;
  /** Last sign of life (ISO time): the end of the newest epoch, or the start. */
  heartbeat?: string;
}

/** Whether a session holds the run: `alive` (lock held), `dead` (lock file left, no holder), `unknown`. */
export type Holder = "alive" | "dead" | "unknown";

/** A lock file found in a run folder, and whether its session still holds it. */
export interface FoundLock {
  /** The file's contents (undefined when unreadable: a session is writing it). */
  info?: RunLockInfo;
  /** Whether a live session holds the run. */
  holder: Holder;
}

function parseInfo(text: string): RunLockInfo | undefined {
  try {
    const v = JSON.parse(text);
    if (typeof v?.pid === "number" && typeof v?.host === "string" && typeof v?.start === "string") return v;
  } catch {
    // torn or empty
  }
  return undefined;
}

/** Tries the OS lock of an open file: true when taken, false when another process holds it, undefined: no locks. */
async function tryTake(file: Deno.FsFile): Promise<boolean | undefined> {
  try {
    return await file.tryLock(true);
  } catch {
    return undefined; // the file system does not support locks
  }
}

/** The lock of a run folder and whether its session is alive; undefined when there is no lock file. */
export async function inspectRunLock(layout: RunLayout): Promise<FoundLock | undefined> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(layout.lock, { read: true });
  } catch {
    return undefined;
  }
  try {
    const info = parseInfo(new TextDecoder().decode(await readAll(file)));
    const taken = await tryTake(file);
    return { info, holder: taken === undefined ? "unknown" : taken ? "dead" : "alive" };
  } finally {
    file.close(); // releases a lock taken to look
  }
}

async function readAll(file: Deno.FsFile): Promise<Uint8Array> {
  await file.seek(0, Deno.SeekMode.Start);
  const chunks: Uint8Array[] = [];
  const buf = new Uint8Array(4096);
  for (let n = await file.read(buf); n !== null; n = await file.read(buf)) chunks.push(buf.slice(0, n));
  const out = new Uint8Array(chunks.reduce((s, c) => s + c.length, 0));
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Another live session trains this run. */
export class RunBusyError extends ToolError {
  /** An error naming the run and its holder. */
  constructor(message: string) {
    super(message);
    this.name = "RunBusyError";
  }
}

/** A run held by this session. */
export class RunLock {
  #file: Deno.FsFile;
  #info: RunLockInfo;
  #held = true;

  private constructor(readonly layout: RunLayout, file: Deno.FsFile, info: RunLockInfo) {
    this.#file = file;
    this.#info = info;
  }

  /** A lock that holds nothing (for ranks that do not write the run folder). */
  static none(layout: RunLayout): RunLock {
    const nothing = { truncate: () => Promise.resolve(), close: () => {} } as unknown as Deno.FsFile;
    const lock = new RunLock(layout, nothing, { pid: Deno.pid, host: Deno.hostname(), start: "" });
    lock.#held = false;
    return lock;
  }

  /**
   * Takes the run for the session started at `start`. Refuses with a {@linkcode RunBusyError} when a live session
   * holds it. Returns the lock and what the file said before (the record of a session that did not end cleanly).
   */
  static async acquire(
    layout: RunLayout,
    start: string,
    warn: (msg: string) => void,
  ): Promise<{ lock: RunLock; previous?: RunLockInfo }> {
    const file = await Deno.open(layout.lock, { read: true, write: true, create: true });
    let taken: boolean | undefined = false;
    // a reader (ckpt list) may hold the lock for an instant to look: try a few times
    for (let i = 0; i < 10 && taken === false; i++) {
      taken = await tryTake(file);
      if (taken === false) await new Promise((r) => setTimeout(r, 100));
    }
    const previous = parseInfo(new TextDecoder().decode(await readAll(file)));
    if (taken === false) {
      file.close();
      const who = previous
        ? `process ${previous.pid} on ${previous.host} (started ${previous.start})`
        : "another process";
      throw new RunBusyError(
        `${layout.dir} is being trained by ${who}; two sessions on one run would overwrite each other's ` +
          `checkpoints. Wait for it, stop it (kill -TERM${
            previous ? ` ${previous.pid}` : ""
          }), or start a new run`,
      );
    }
    if (taken === undefined && previous) {
      warn(
        `warning: ${layout.lock} says process ${previous.pid} on ${previous.host} trains this run (last sign of ` +
          `life ${
            previous.heartbeat ?? previous.start
          }); this file system has no file locks to tell whether it ` +
          `still runs: taking the run over`,
      );
    }
    const lock = new RunLock(layout, file, { pid: Deno.pid, host: Deno.hostname(), start });
    await lock.#write();
    return { lock, previous };
  }

  async #write(): Promise<void> {
    const bytes = new TextEncoder().encode(JSON.stringify(this.#info) + "\n");
    writePoint(this.layout.lock);
    try {
      // in place, then cut to length: no new space needed once the file has been written once
      await this.#file.seek(0, Deno.SeekMode.Start);
      let off = 0;
      while (off < bytes.length) off += await this.#file.write(bytes.subarray(off));
      await this.#file.truncate(bytes.length);
      await this.#file.syncData();
    } catch (e) {
      throw diskFullOr(e, this.layout.lock);
    }
  }

  /** Records a sign of life (rewrites the file in place: the OS lock stays on it). */
  async heartbeat(): Promise<void> {
    if (!this.#held) return;
    this.#info.heartbeat = new Date().toISOString();
    await this.#write();
  }

  /** Gives the run back: removes the file, then drops the lock. */
  release(): void {
    if (!this.#held) return;
    this.#held = false;
    try {
      Deno.removeSync(this.layout.lock);
    } catch {
      // gone already
    }
    try {
      this.#file.close();
    } catch {
      // closed already
    }
  }
}

/**
 * Removes the temporary files that killed writes left in the run folder and its checkpoint folder
 * (`<name>.<pid>.<random>.tmp`, see `atomic.ts`). Call it only while holding the run: then no other session
 * writes there, so every such file not of this process was left by one that is gone. Returns the paths removed.
 */
export async function removeStaleTemporaries(layout: RunLayout): Promise<string[]> {
  const removed: string[] = [];
  for (const dir of new Set([layout.dir, layout.checkpointDir])) {
    let entries: Deno.DirEntry[] = [];
    try {
      entries = await Array.fromAsync(Deno.readDir(dir));
    } catch {
      continue;
    }
    for (const e of entries) {
      const m = /\.(\d+)\.[a-z0-9]+\.tmp$/.exec(e.name);
      if (!e.isFile || !m || Number(m[1]) === Deno.pid) continue;
      await Deno.remove(`${dir}/${e.name}`).then(() => removed.push(`${dir}/${e.name}`), () => {});
    }
  }
  return removed;
}
