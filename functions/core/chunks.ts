import type { Readable } from 'node:stream';
import { DumpBagError } from './errors';

/**
 * The body's chunks one at a time, as they were pushed. A Readable's own async iterator hands out
 * everything buffered joined into one new Buffer: a copy of every byte, into fresh memory whose page
 * faults cost more than the copy. Holds at most `high` chunks before pausing the body.
 */
export async function* chunksOf(body: Readable, high = 16): AsyncGenerator<Buffer> {
  const queue: Buffer[] = [];
  let failure: unknown;
  let ended = false;
  let wake: (() => void) | undefined;
  const signal = () => {
    wake?.();
    wake = undefined;
  };
  const onData = (chunk: Buffer | Uint8Array) => {
    queue.push(
      Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength),
    );
    if (queue.length >= high) body.pause();
    signal();
  };
  const onEnd = () => {
    ended = true;
    signal();
  };
  const onError = (error: unknown) => {
    failure ??= error;
    signal();
  };
  const onClose = () => {
    if (!ended) failure ??= new DumpBagError('the dump stream closed before its end');
    signal();
  };
  body.on('data', onData);
  body.once('end', onEnd);
  body.once('error', onError);
  body.once('close', onClose);
  try {
    for (;;) {
      const chunk = queue.shift();
      if (chunk) {
        if (queue.length < high / 2 && body.isPaused()) body.resume();
        yield chunk;
        continue;
      }
      if (failure) throw failure;
      if (ended) return;
      if (body.isPaused()) body.resume();
      await new Promise<void>((resolve) => {
        wake = resolve;
      });
    }
  } finally {
    body.off('data', onData);
    body.off('end', onEnd);
    body.off('error', onError);
    body.off('close', onClose);
  }
}
