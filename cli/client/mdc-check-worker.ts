/**
 * The worker thread of mdc-check.ts: decrypts the SEIPD body it is sent, chunk by chunk, into nothing,
 * and says how many bytes it took and, at the end, whether the MDC held.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { type SeipdKey, seipdBodyReader } from '../../functions/core/seipd-body';
import type { CheckMessage } from './mdc-check';

const port = parentPort;
if (!port) throw new Error('mdc-check-worker runs as a worker thread only');
const tell = (message: CheckMessage) => port.postMessage(message);
const reader = seipdBodyReader(workerData as SeipdKey);
reader.on('data', () => {
  // The plaintext goes nowhere: only the MDC at the end matters.
});
reader.once('end', () => tell({ ok: true }));
reader.once('error', (error) => tell({ failed: error.message }));
port.on('message', (chunk: Uint8Array | null) => {
  if (chunk === null) {
    reader.end();
    return;
  }
  const bytes = chunk.byteLength;
  reader.write(Buffer.from(chunk.buffer, chunk.byteOffset, bytes), () => tell({ taken: bytes }));
});
