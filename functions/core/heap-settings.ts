import { setFlagsFromString } from 'node:v8';

/**
 * How much the old generation may grow past its live size before V8 marks it again: 300 % (a limit
 * of four times the live size). V8 otherwise picks the factor from how fast JavaScript allocates
 * against how fast it collects, and a dump's process allocates little on the JavaScript heap while
 * hundreds of megabytes of Buffers pass outside it: the factor falls to 1.1, a limit about 9 MB above a
 * 14 MB heap. Buffers alive since the last full collection count against that limit, and the few
 * parts and pieces in flight swing by as much, so V8 then ran a full mark-compact every half second
 * for the rest of the backup: 20 to 37 of them in a reference backup, with their sweeper threads,
 * 0.8 CPU-seconds (bench/README.md). The heap itself stays near 14 MB either way.
 */
export const OLD_GENERATION_GROWING_PERCENT = 300;

/**
 * Sets V8's heap for a process that streams a dump. Every piece of the stream (a pipe read, a cipher
 * output) is a short-lived Buffer.
 * - The young generation stays at its first size: once V8 had grown it to its 16 MiB ceiling, the old
 *   generation's slack on a heap this small was no longer above it, and V8 started a full mark-compact
 *   every few hundred milliseconds (27 to 40 in a reference backup), with a quarter more peak memory.
 * - The old generation grows by a fixed factor (OLD_GENERATION_GROWING_PERCENT).
 * V8 reads both flags each time it sizes a space, so setting them at start-up holds.
 */
export function tuneHeapForStreaming(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWING_PERCENT}`);
}
