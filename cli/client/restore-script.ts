/**
 * Restoring into a server older than pg_restore 17: pg_restore 17 and newer start every restore with
 * `SET transaction_timeout = 0`, which a 16 server refuses, and one refused statement stops a restore
 * in one transaction. So for such a server pg_restore writes the SQL script, that one line of its
 * opening settings is dropped, and psql runs the rest in one transaction, stopping at any other error.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage } from '../../functions/core/errors';
import { localPgRestoreMajor } from './restore-compat';

/** The line pg_restore 17+ writes among its opening settings, unknown to servers before 17. */
const TIMEOUT_LINE = 'SET transaction_timeout = 0;';
/**
 * The opening settings are comments, SET and SELECT lines and psql's `\\restrict` (pg_dump 17.6 and
 * later): past them the script is passed on untouched.
 */
const PREAMBLE_LINE = /^(--.*|SET .*|SELECT .*|\\restrict .*|)$/;

/** The server's major (16 for 16.4), or undefined when psql cannot ask it; then the direct restore says why. */
export async function serverMajor(conninfo: string): Promise<number | undefined> {
  const child = spawn(
    'psql',
    [
      '--no-psqlrc',
      '--no-align',
      '--tuples-only',
      '--command=SHOW server_version_num',
      `--dbname=${conninfo}`,
    ],
    { stdio: ['ignore', 'pipe', 'ignore'] },
  );
  let out = '';
  child.stdout.on('data', (chunk: Buffer) => {
    if (out.length < 64) out += chunk.toString('utf8');
  });
  const code = await new Promise<number | null>((done) => {
    child.once('error', () => done(null));
    child.once('close', done);
  });
  const num = Number.parseInt(out.trim(), 10);
  return code === 0 && Number.isInteger(num) && num >= 90000 ? Math.floor(num / 10000) : undefined;
}

/** Whether this pg_restore would send the server a setting it does not know (pg_restore ≥ 17, server < 17). */
export async function needsScriptRestore(conninfo: string): Promise<boolean> {
  const tool = await localPgRestoreMajor().catch(() => undefined);
  if (tool === undefined || tool < 17) return false;
  const server = await serverMajor(conninfo);
  return server !== undefined && server < 17;
}

/** Drops the transaction_timeout line from the script's opening settings; the rest passes untouched. */
export class OpeningSettingsFilter extends Transform {
  private inPreamble = true;
  private carry = '';

  /** `beforeEnd` runs before the end is passed on, and may refuse it (a failed pg_restore). */
  constructor(private readonly beforeEnd: () => Promise<void> = () => Promise.resolve()) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    if (!this.inPreamble) {
      done(null, chunk);
      return;
    }
    const text = this.carry + chunk.toString('latin1');
    const lines = text.split('\n');
    this.carry = lines.pop() ?? '';
    const kept: string[] = [];
    for (const [index, line] of lines.entries()) {
      if (!PREAMBLE_LINE.test(line)) {
        // The first statement of the dump itself: from here on nothing is looked at.
        this.inPreamble = false;
        const rest = [...lines.slice(index), this.carry].join('\n');
        this.carry = '';
        done(null, Buffer.from(kept.map((l) => `${l}\n`).join('') + rest, 'latin1'));
        return;
      }
      if (line !== TIMEOUT_LINE) kept.push(line);
    }
    done(null, Buffer.from(kept.map((l) => `${l}\n`).join(''), 'latin1'));
  }

  override _flush(done: TransformCallback): void {
    this.beforeEnd().then(
      () => done(null, this.carry === '' ? undefined : Buffer.from(this.carry, 'latin1')),
      (error: unknown) => done(error as Error),
    );
  }
}

function exitOf(
  child: ChildProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null; error?: Error }> {
  return new Promise((done) => {
    child.once('error', (error) => done({ code: null, signal: null, error }));
    child.once('close', (code, signal) => done({ code, signal }));
  });
}

/**
 * `pg_restore -f -` → filter → `psql --single-transaction -v ON_ERROR_STOP=1`. psql is killed before
 * it could read the end of its input whenever pg_restore or the source fails, so its transaction never
 * commits. Returns what each tool said and how it ended, for the caller's error.
 */
export async function restoreAsScript(
  source: Readable,
  conninfo: string,
  args: readonly string[],
  onStderr: (chunk: Buffer) => void,
): Promise<{ ok: boolean; why?: string; streamError?: unknown }> {
  const restore = spawn('pg_restore', ['--no-owner', ...args, '--file=-'], {
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const psql = spawn(
    'psql',
    ['--no-psqlrc', '--quiet', '--single-transaction', '--set=ON_ERROR_STOP=1', `--dbname=${conninfo}`],
    { stdio: ['pipe', 'ignore', 'pipe'] },
  );
  restore.stderr.on('data', onStderr);
  psql.stderr.on('data', onStderr);
  const restoreExit = exitOf(restore);
  const psqlExit = exitOf(psql);
  const feed = pipeline(source, restore.stdin);
  // A failed pg_restore must not hand psql an end of input: psql would commit what it ran.
  const filter = new OpeningSettingsFilter(async () => {
    const exit = await restoreExit;
    if (exit.code !== 0) {
      psql.kill('SIGKILL');
      throw new Error('pg_restore failed');
    }
  });
  const run = pipeline(restore.stdout, filter, psql.stdin);
  let streamError: unknown;
  await feed.catch((error: unknown) => {
    // pg_restore closing its input early is its own failure, told by its exit.
    const code = (error as NodeJS.ErrnoException | undefined)?.code;
    if (code === 'EPIPE' || code === 'ERR_STREAM_PREMATURE_CLOSE' || code === 'ERR_STREAM_DESTROYED') return;
    streamError = error;
    psql.kill('SIGKILL');
    restore.kill('SIGKILL');
  });
  await run.catch(() => psql.kill('SIGKILL'));
  const [r, p] = await Promise.all([restoreExit, psqlExit]);
  if (r.error) return { ok: false, why: `cannot run pg_restore: ${errorMessage(r.error)}`, streamError };
  if (p.error) return { ok: false, why: `cannot run psql: ${errorMessage(p.error)}`, streamError };
  if (streamError !== undefined) return { ok: false, streamError };
  if (r.code !== 0) return { ok: false, why: `pg_restore exited with code ${r.code ?? r.signal}` };
  if (p.code !== 0) return { ok: false, why: `psql exited with code ${p.code ?? p.signal}` };
  return { ok: true };
}
