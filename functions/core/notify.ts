/**
 * Short messages to the team's webhooks (Slack, Microsoft Teams workflows, any endpoint taking
 * JSON): a `text` line those chat tools show as is, plus structured fields for everything else.
 * Delivery is retried, then logged; it never fails a backup. Webhook URLs are secrets (the URL is
 * the credential): they are never logged or put in a message, only numbered.
 */
import { errorMessage } from './errors';
import { setting } from './settings';
import { webhooksFromEnv } from './webhooks';

export type Notice =
  | {
      readonly kind: 'database-failed';
      readonly database: string;
      readonly cause: string;
      readonly executionLink?: string;
    }
  | {
      readonly kind: 'bag-stale';
      readonly alarm: string;
      readonly reason: string;
      /** The database a per-database staleness alarm watches. */
      readonly database?: string;
    }
  | {
      readonly kind: 'key-expiring';
      /** From the run's own check (the command line); an alarm knows only the days left. */
      readonly fingerprint?: string;
      readonly userId?: string;
      readonly expiresAt?: string;
      readonly daysLeft?: number;
      /** The alarm that told, when the stack's key-expiry alarm did. */
      readonly alarm?: string;
    }
  | {
      readonly kind: 'digest';
      readonly databases: readonly { readonly database: string; readonly bytes?: number }[];
    };

export interface Message {
  /** What Slack and Teams show. */
  readonly text: string;
  readonly kind: Notice['kind'];
  readonly bag: string;
  readonly at: string;
  readonly details: Notice;
}

/** Causes can hold pg_dump's stderr: one line, bounded, so a message stays short. */
const MAX_CAUSE = 500;

function oneLine(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
}

export function formatMessage(notice: Notice, bag: string, now = new Date()): Message {
  const base = { kind: notice.kind, bag, at: now.toISOString() };
  switch (notice.kind) {
    case 'database-failed': {
      const details = { ...notice, cause: oneLine(notice.cause, MAX_CAUSE) };
      const link = notice.executionLink ? ` (${notice.executionLink})` : '';
      return {
        ...base,
        details,
        text: `:x: ${bag}: the backup of ${notice.database} failed: ${details.cause}${link}`,
      };
    }
    case 'bag-stale': {
      const what = notice.database === undefined ? '' : ` of ${notice.database}`;
      return {
        ...base,
        details: notice,
        text: `:warning: ${bag}: no fresh dump${what} (${notice.alarm}): ${oneLine(notice.reason, MAX_CAUSE)}`,
      };
    }
    case 'key-expiring':
      return { ...base, details: notice, text: `:key: ${bag}: ${keyExpiringText(notice)}` };
    case 'digest':
      return {
        ...base,
        details: notice,
        text: `:white_check_mark: ${bag}: ${notice.databases.length} database(s) backed up: ${notice.databases.map((d) => d.database).join(', ')}`,
      };
  }
}

function keyExpiringText(notice: Extract<Notice, { kind: 'key-expiring' }>): string {
  const renew = 'renew it (gpg --quick-set-expire) and re-export it';
  if (notice.fingerprint !== undefined)
    return `the key of ${notice.userId ?? 'a recipient'} (${notice.fingerprint}) expires ${notice.expiresAt ?? 'soon'}: ${renew}`;
  const when = notice.daysLeft === undefined ? 'soon' : `in ${notice.daysLeft} day(s)`;
  const alarm = notice.alarm === undefined ? '' : ` (${notice.alarm})`;
  return `a recipient's key expires ${when}${alarm}; the plan step's log names it: ${renew}`;
}

export interface Delivery {
  /** The webhook's place in the list (1-based): the URL itself is a secret. */
  readonly webhook: number;
  readonly delivered: boolean;
  readonly attempts: number;
  readonly error?: string;
}

export interface PostOptions {
  readonly attempts?: number;
  readonly timeoutMs?: number;
  /** Milliseconds before the second attempt; doubled after each. */
  readonly backoffMs?: number;
  readonly log?: (line: string) => void;
}

/** One POST of the message: undefined when taken, else why not (never the URL, which is a secret). */
async function postOnce(url: string, body: string, timeoutMs: number): Promise<string | undefined> {
  try {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      redirect: 'error',
      signal: AbortSignal.timeout(timeoutMs),
    });
    await response.arrayBuffer().catch(() => undefined);
    return response.ok ? undefined : `HTTP ${response.status}`;
  } catch (caught: unknown) {
    // fetch's messages may quote the URL: keep only the cause's kind.
    return (caught as Error).name === 'TimeoutError'
      ? 'timed out'
      : `could not connect (${errorName(caught)})`;
  }
}

/** Posts one message to every webhook, each retried; resolves with what happened, never rejects. */
export async function postMessage(
  urls: readonly string[],
  message: Message,
  options: PostOptions = {},
): Promise<Delivery[]> {
  const attempts = options.attempts ?? 3;
  const body = JSON.stringify(message);
  const out: Delivery[] = [];
  for (const [index, url] of urls.entries()) {
    let error: string | undefined = 'not tried';
    let tried = 0;
    for (; tried < attempts && error !== undefined; tried++) {
      if (tried > 0) await new Promise((r) => setTimeout(r, (options.backoffMs ?? 500) * 2 ** (tried - 1)));
      error = await postOnce(url, body, options.timeoutMs ?? 10_000);
    }
    const delivered = error === undefined;
    out.push({ webhook: index + 1, delivered, attempts: tried, ...(delivered ? {} : { error }) });
    if (!delivered)
      options.log?.(
        `notify: webhook #${index + 1} did not take the ${message.kind} message after ${tried} attempts: ${error}`,
      );
  }
  return out;
}

function errorName(error: unknown): string {
  const cause = (error as { cause?: { code?: string } }).cause?.code;
  return cause ?? (error instanceof Error ? error.name : errorMessage(error).slice(0, 40));
}

/** The messages a finished run sends: one per failed database, and the digest of successes when asked. */
export function runNotices(
  results: readonly {
    readonly database: string;
    readonly status: string;
    readonly error?: string;
    readonly bytes?: number;
  }[],
  options: {
    readonly digest?: boolean;
    readonly executionLink?: string;
    readonly runError?: string;
    readonly keyWarnings?: readonly {
      readonly fingerprint: string;
      readonly userId: string;
      readonly expiresAt: Date;
      readonly daysLeft: number;
    }[];
  } = {},
): Notice[] {
  const notices: Notice[] = results
    .filter((r) => r.status !== 'ok')
    .map((r) => ({
      kind: 'database-failed' as const,
      database: r.database,
      cause: r.error ?? 'unknown',
      ...(options.executionLink ? { executionLink: options.executionLink } : {}),
    }));
  if (options.runError) {
    notices.push({
      kind: 'database-failed',
      database: '(every database)',
      cause: options.runError,
      executionLink: options.executionLink,
    });
  }
  for (const w of options.keyWarnings ?? []) {
    notices.push({
      kind: 'key-expiring',
      fingerprint: w.fingerprint,
      userId: w.userId,
      expiresAt: w.expiresAt.toISOString(),
      daysLeft: w.daysLeft,
    });
  }
  const ok = results.filter((r) => r.status === 'ok');
  if (options.digest && ok.length > 0) {
    notices.push({ kind: 'digest', databases: ok.map((r) => ({ database: r.database, bytes: r.bytes })) });
  }
  return notices;
}

/** After a command-line backup: the failed databases (and the digest) to DUMP_BAG_NOTIFY_URL's webhooks. */
export async function notifyRunFromEnv(
  run: {
    readonly results: Parameters<typeof runNotices>[0];
    readonly error?: string;
    readonly keyWarnings?: NonNullable<Parameters<typeof runNotices>[1]>['keyWarnings'];
  },
  env: Record<string, string | undefined> = process.env,
  options: PostOptions = {},
): Promise<Delivery[]> {
  const log = options.log ?? ((line: string) => console.error(line));
  const urls = webhooksFromEnv(env, log);
  if (urls.length === 0) return [];
  const notices = runNotices(run.results, {
    digest: setting('notifyDigest', env),
    runError: run.error,
    keyWarnings: run.keyWarnings,
  });
  const bag = env.DUMP_BAG_BUCKET ?? 'dump-bag';
  const out: Delivery[] = [];
  for (const notice of notices)
    out.push(...(await postMessage(urls, formatMessage(notice, bag), { ...options, log })));
  return out;
}
