/**
 * Imported first by the trainer's entry point, so that from the process's first moment a SIGTERM or SIGINT (a
 * scheduler's warning signal that comes while the trainer is still loading) is remembered and ends the session
 * with a resumable state, instead of ending the process before it could write one.
 *
 * @module
 */

import { latchEarlySignals } from "../train/stopping.ts";

latchEarlySignals();
