/**
 * The error of bad data.
 *
 * @module
 */

import { ToolError } from "../errors.ts";

/** An error in the data; the message names the folder or file and the fix. */
export class DataError extends ToolError {
  /** An error with the given message (exit status 2). */
  constructor(message: string) {
    super(message);
    this.name = "DataError";
  }
}
