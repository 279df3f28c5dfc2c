import type { TransformCallback } from 'node:stream';

/**
 * Runs a synchronous step of a Transform (`_transform`, `_flush`) and hands its outcome to the
 * stream's callback: the error it threw, else success. The callback is called outside the `try`, so
 * an error thrown further down the pipe is not taken for this step's and reported twice.
 */
export function settle(callback: TransformCallback, step: () => void): void {
  try {
    step();
  } catch (error: unknown) {
    callback(error as Error);
    return;
  }
  callback();
}
