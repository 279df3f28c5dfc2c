/**
 * The MDC check on a thread of its own. `get` decrypts a dump twice: into nothing while the download
 * runs, to check it, then into the release. On the main thread the check shares one core with the
 * download's own work (socket reads, SHA-256, the work file); in a worker it takes a second core where
 * there is one (bench/README.md, restore).
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { Worker } from 'node:worker_threads';
import { DumpBagError, errorMessage } from '../../functions/core/errors';
import { SeipdError, type SeipdKey } from '../../functions/core/seipd-body';

/** Ciphertext handed to the worker and not yet decrypted by it: past this the download waits. */
const IN_FLIGHT_BYTES = 8 * 1024 * 1024;

/** What the worker says: bytes it has decrypted, or its verdict at the end. */
export type CheckMessage = { readonly taken: number } | { readonly ok: true } | { readonly failed: string };

/** The worker itself failed (not the dump): a broken install, or no memory for a thread. */
function workerFailure(error: unknown): DumpBagError {
  return new DumpBagError(`the integrity check's worker thread failed: ${errorMessage(error)}`);
}

function startWorker(seipd: SeipdKey): Worker {
  const here = import.meta.url;
  // The bundle (bin/dump-bag.js) holds the worker as an entry point of its own beside this chunk.
  if (here.endsWith('.mjs'))
    return new Worker(new URL('./mdc-check-worker.mjs', here), { workerData: seipd });
  // From the sources (tests, or without esbuild): tsx compiles the worker's TypeScript too.
  const tsx = import.meta.resolve('tsx/esm/api');
  const entry = new URL('./mdc-check-worker.ts', here).href;
  const boot = `import(${JSON.stringify(tsx)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(entry)}); })`;
  return new Worker(boot, { eval: true, workerData: seipd });
}

/**
 * Decrypts the SEIPD body `body` in a worker thread, into nothing: the stream returned gives no data,
 * and ends when the MDC held or errors when it did not. `body` is read no faster than the worker decrypts.
 */
export function checkedInWorker(seipd: SeipdKey, body: Readable): Readable {
  let worker: Worker;
  try {
    worker = startWorker(seipd);
  } catch (error: unknown) {
    body.destroy();
    throw workerFailure(error);
  }
  const verdict = new Readable({ read() {} });
  let settled = false;
  const fail = (error: Error) => {
    if (settled) return;
    settled = true;
    verdict.destroy(error);
  };
  let inFlight = 0;
  let resume: (() => void) | undefined;
  worker.on('message', (message: CheckMessage) => {
    if ('taken' in message) {
      inFlight -= message.taken;
      if (resume && inFlight < IN_FLIGHT_BYTES) {
        const go = resume;
        resume = undefined;
        go();
      }
    } else if ('ok' in message) {
      settled = true;
      verdict.push(null);
    } else fail(new SeipdError(message.failed));
  });
  worker.once('error', (error) => fail(workerFailure(error)));
  worker.once('exit', (code) => fail(workerFailure(`it stopped with exit code ${code}`)));
  const feed = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      // Cloning a Buffer would copy the whole memory it is a view of; a copy of its own bytes moves as it is.
      const own = new Uint8Array(chunk);
      worker.postMessage(own, [own.buffer]);
      inFlight += chunk.length;
      if (inFlight < IN_FLIGHT_BYTES) callback();
      else resume = callback;
    },
    final(callback) {
      worker.postMessage(null);
      callback();
    },
  });
  pipeline(body, feed).catch(fail);
  verdict.once('close', () => {
    void worker.terminate();
    body.destroy();
  });
  return verdict;
}
