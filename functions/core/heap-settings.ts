import { setFlagsFromString } from 'node:v8';

/**
 * How far the old generation may grow past its live size before V8 marks it again, in percent. Left
 * to itself, V8 sets the factor by how fast the JavaScript heap allocates. A dump's process allocates
 * little there while its Buffers pass outside it, so V8 shrinks the factor to 1.1. The Buffers in
 * flight then fill that slack, and a full mark-compact runs every half second (bench/README.md).
 */
export const OLD_GENERATION_GROWING_PERCENT = 300;

/**
 * Sets V8's heap for a process that streams a dump, where every piece (a pipe read, a cipher output) is
 * a short-lived Buffer. The young generation stays at its first size: grown to its 16 MiB ceiling, it
 * left the old generation's slack on a heap this small too narrow, with the same storm of full
 * collections. The old generation grows by the fixed OLD_GENERATION_GROWING_PERCENT. V8 reads both
 * flags each time it sizes a space, so setting them at start-up holds.
 */
export function tuneHeapForStreaming(): void {
  setFlagsFromString('--semi-space-growth-factor=1');
  setFlagsFromString(`--heap-growing-percent=${OLD_GENERATION_GROWING_PERCENT}`);
}
