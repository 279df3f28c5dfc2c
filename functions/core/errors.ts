/** Base class of every error Dump Bag raises on purpose; anything else is a bug or an outside fault. */
export class DumpBagError extends Error {
  override name = 'DumpBagError';
}

/** The base of one kind of DumpBagError, its `name` given as text: minified bundles rename classes. */
function named(name: string) {
  return class extends DumpBagError {
    override name = name;
  };
}

/** A setting is missing or malformed; the message names the variable or option. */
export class ConfigError extends named('ConfigError') {}

/** Public keys or recipients cannot be used: the run must stop before any byte is uploaded. */
export class KeyError extends named('KeyError') {}

/** pg_dump failed: bad exit code, killed by a signal, or wrote something that is not a custom-format dump. */
export class PgDumpError extends named('PgDumpError') {
  constructor(
    message: string,
    readonly details: { exitCode?: number | null; signal?: string | null; stderrTail?: string } = {},
  ) {
    super(message);
  }
}

/** The S3 side of a dump failed; the multipart upload has been aborted. */
export class UploadError extends named('UploadError') {}

/** The time allowed for a dump ran out; the upload has been aborted. */
export class DeadlineError extends named('DeadlineError') {}

/** A database, dump or key that was asked for does not exist. */
export class NotFoundError extends named('NotFoundError') {}

/** A request or argument is malformed. */
export class ValidationError extends named('ValidationError') {}

/** The message of any thrown value, for reports; never includes a stack. */
export function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message;
  return String(error);
}
