import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, rmSync } from 'node:fs';
import { rename, rm } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { type Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { DumpBagError, errorMessage } from '../../functions/core/errors';
import { needsScriptRestore, restoreAsScript } from './restore-script';

/** pg_restore failed; the message carries the tail of its stderr. */
export class RestoreError extends DumpBagError {
  override name = 'RestoreError';
}

const STDERR_TAIL_BYTES = 4096;

function tailCollector() {
  let tail = Buffer.alloc(0);
  return {
    add(chunk: Buffer) {
      tail = Buffer.concat([tail, chunk]);
      if (tail.length > STDERR_TAIL_BYTES) tail = tail.subarray(tail.length - STDERR_TAIL_BYTES);
    },
    text: () => tail.toString('utf8').trim(),
  };
}

/**
 * Writes a stream to `path` through a temporary file beside it, renamed into place only when the
 * stream ended without error; on any failure, or Ctrl-C, the temporary file is removed.
 */
export async function writeFileAtomically(source: Readable, path: string): Promise<void> {
  const target = resolve(path);
  const temp = join(dirname(target), `.${basename(target)}.${randomBytes(4).toString('hex')}.part`);
  const onSignal = (signal: NodeJS.Signals) => {
    rmSync(temp, { force: true });
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    await pipeline(source, createWriteStream(temp, { flags: 'wx', mode: 0o600 }));
    await rename(temp, target);
  } catch (error: unknown) {
    await rm(temp, { force: true });
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function isPipeError(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ERR_STREAM_PREMATURE_CLOSE';
}

/**
 * Restores an archive stream with `pg_restore --no-owner` into the database `conninfo` names, in one
 * transaction: when the stream fails (tampered, undecryptable), pg_restore is killed before it could
 * commit, and the database is left as it was.
 */
export async function restoreArchive(
  source: Readable | undefined,
  conninfo: string,
  /** Pass-through options (restore-options.ts) and, for --jobs, the archive's file instead of the stream. */
  extra: { readonly args?: readonly string[]; readonly file?: string } = {},
): Promise<void> {
  if (source && !extra.file && (await needsScriptRestore(conninfo))) {
    return restoreIntoOlderServer(source, conninfo, extra.args ?? []);
  }
  const args = restoreCommand(conninfo, extra);
  const child = spawn('pg_restore', args, { stdio: [extra.file ? 'ignore' : 'pipe', 'inherit', 'pipe'] });
  const stderr = tailCollector();
  child.stderr?.on('data', (chunk: Buffer) => stderr.add(chunk));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }>(
    (done) => {
      child.once('error', (error) => done({ code: null, signal: null, error }));
      child.once('close', (code, signal) => done({ code, signal }));
    },
  );
  let streamError: unknown;
  try {
    if (source && child.stdin) await pipeline(source, child.stdin);
  } catch (error: unknown) {
    streamError = error;
    // Without its last bytes pg_restore is still waiting; killed now, its transaction never commits.
    if (!isPipeError(error)) child.kill('SIGKILL');
  }
  const exit = await exited;
  if (streamError !== undefined && !isPipeError(streamError)) throw streamError;
  const failure = restoreFailure(exit, stderr.text(), extra.file === undefined);
  if (failure) throw failure;
  if (streamError !== undefined) throw streamError;
}

/** Into a server older than pg_restore 17, as a script (restore-script.ts), still all or nothing. */
async function restoreIntoOlderServer(
  source: Readable,
  conninfo: string,
  args: readonly string[],
): Promise<void> {
  const stderr = tailCollector();
  const result = await restoreAsScript(source, conninfo, args, (chunk) => stderr.add(chunk));
  if (result.streamError !== undefined) throw result.streamError;
  if (!result.ok) {
    const said = stderr.text();
    throw new RestoreError(`${result.why}; nothing was restored${said ? `:\n${said}` : ''}`);
  }
}

/** pg_restore's arguments: one transaction from a stream; --jobs cannot, so it reads a file that passed every check. */
function restoreCommand(
  conninfo: string,
  extra: { readonly args?: readonly string[]; readonly file?: string },
) {
  const passed = [...(extra.args ?? []), `--dbname=${conninfo}`];
  return extra.file
    ? ['--no-owner', '--exit-on-error', ...passed, extra.file]
    : ['--no-owner', '--single-transaction', '--exit-on-error', ...passed];
}

/** The error of a pg_restore that could not run or did not exit 0, with the tail of what it said. */
function restoreFailure(
  exit: { code: number | null; signal: NodeJS.Signals | null; error?: Error },
  said: string,
  oneTransaction: boolean,
): RestoreError | undefined {
  if (exit.error) return new RestoreError(`cannot run pg_restore: ${errorMessage(exit.error)}`);
  if (exit.code === 0) return undefined;
  const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
  // Only one transaction is all or nothing; --jobs commits what it restored before the error.
  const left = oneTransaction ? 'nothing was restored' : 'the database may hold part of the dump';
  return new RestoreError(`pg_restore ${how}; ${left}${said ? `:\n${said}` : ''}`);
}

export interface ArchiveListing {
  /** TOC entries pg_restore --list printed (lines that are not comments). */
  readonly entries: number;
  /** The `dbname:` of the archive's header. */
  readonly database?: string;
}

/**
 * Runs `pg_restore --list` on an archive stream. pg_restore stops reading after the table of
 * contents; the rest of the stream is still read to its end so its checks run.
 */
export async function listArchive(source: Readable): Promise<ArchiveListing> {
  const child = spawn('pg_restore', ['--list'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const stderr = tailCollector();
  const stdout: Buffer[] = [];
  child.stdout.on('data', (chunk: Buffer) => stdout.push(chunk));
  child.stderr.on('data', (chunk: Buffer) => stderr.add(chunk));
  const exited = new Promise<{ code: number | null; error?: Error }>((done) => {
    child.once('error', (error) => done({ code: null, error }));
    child.once('close', (code) => done({ code }));
  });
  let open = true;
  child.stdin.on('error', () => {
    open = false;
  });
  const sink = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      if (!open) return callback();
      child.stdin.write(chunk, (error) => {
        if (error) open = false;
        callback();
      });
    },
    final(callback) {
      if (open) child.stdin.end();
      callback();
    },
  });
  try {
    await pipeline(source, sink);
  } catch (error: unknown) {
    child.kill('SIGKILL');
    await exited;
    throw error;
  }
  const exit = await exited;
  if (exit.error) throw new RestoreError(`cannot run pg_restore: ${errorMessage(exit.error)}`);
  if (exit.code !== 0) {
    throw new RestoreError(
      `pg_restore --list exited with code ${exit.code}: ${stderr.text() || 'no message'}`,
    );
  }
  const text = Buffer.concat(stdout).toString('utf8');
  const lines = text.split('\n');
  return {
    entries: lines.filter((l) => l.trim() !== '' && !l.startsWith(';')).length,
    database: /^;\s+dbname: (.*)$/m.exec(text)?.[1],
  };
}
