import type { ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';
import { Transform, type TransformCallback } from 'node:stream';
import { tlsAdvice } from './db-tls';
import { PgDumpError } from './errors';
import { redact } from './redact';

const STDERR_TAIL_BYTES = 4096;

/** libpq's TLS failures say what failed, not what to do: the fix follows the message. */
function advise(stderrTail: string): string {
  const advice = tlsAdvice(stderrTail);
  return advice ? ` (${advice})` : '';
}

export interface CheckedOutputOptions {
  /** The tool's name in messages: pg_dump, pg_dumpall. */
  readonly tool: string;
  readonly binaryPath: string;
  /** Secrets to blank out of the stderr tail before it is reported. */
  readonly redact: readonly string[];
  /** Looks at each chunk as it passes; an error stops the stream. */
  readonly inspect?: (chunk: Buffer) => Error | undefined;
  /** Looks at the whole output once the tool exited 0; an error fails the stream. */
  readonly atEnd?: () => Error | undefined;
}

/**
 * A child's stdout as a stream that errors unless the child exits 0 (with the tail of its stderr, never a
 * secret), and that ends only once the exit is known: ending earlier would let an upload complete.
 * Destroying the stream kills the child.
 */
export function checkedOutput(
  child: ChildProcessByStdio<null, Readable, Readable>,
  options: CheckedOutputOptions,
): Transform {
  let stderr = Buffer.alloc(0);
  child.stderr.on('data', (chunk: Buffer) => {
    stderr = Buffer.concat([stderr, chunk]);
    if (stderr.length > STDERR_TAIL_BYTES) stderr = stderr.subarray(stderr.length - STDERR_TAIL_BYTES);
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; spawnError?: Error }>(
    (resolve) => {
      child.once('error', (spawnError) => resolve({ code: null, signal: null, spawnError }));
      child.once('close', (code, signal) => resolve({ code, signal }));
    },
  );
  const tail = (): string => redact(stderr.toString('utf8').trim(), options.redact);
  const cannotStart = (error: Error) =>
    new PgDumpError(`cannot start ${options.binaryPath}: ${error.message}`);
  let exitKnown = false;
  void exited.then(() => {
    exitKnown = true;
  });
  const guard = new Transform({
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const error = options.inspect?.(chunk);
      if (error) callback(error);
      else callback(null, chunk);
    },
    flush(callback: TransformCallback) {
      exited.then(({ code, signal, spawnError }) => {
        if (spawnError) callback(cannotStart(spawnError));
        else if (signal) {
          const why = tail();
          callback(
            new PgDumpError(`${options.tool} was killed by ${signal}${why ? `: ${why}` : ''}`, {
              signal,
              stderrTail: why,
            }),
          );
        } else if (code !== 0) {
          const why = tail();
          callback(
            new PgDumpError(
              `${options.tool} exited with code ${code}: ${why || 'no message'}${advise(why)}`,
              {
                exitCode: code,
                stderrTail: why,
              },
            ),
          );
        } else callback(options.atEnd?.());
      }, callback);
    },
    destroy(error, callback) {
      if (!exitKnown) child.kill('SIGKILL');
      callback(error);
    },
  });
  child.once('error', (error) => guard.destroy(cannotStart(error)));
  child.stdout.on('error', (error) => guard.destroy(error));
  child.stdout.pipe(guard);
  return guard;
}
