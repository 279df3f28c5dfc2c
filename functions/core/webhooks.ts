/**
 * Webhook URLs, from the environment (the command line) or a Secrets Manager secret's value (the
 * stack's notifier). A URL is a credential: it is never logged or repeated in an error, only numbered.
 */
import { ConfigError } from './errors';
import { parseList } from './setting-parsers';
import { SETTINGS, setting } from './settings';

/** The notifier's webhooks cannot be read; the message names the secret and the fix, never its value. */
export class NotifyConfigError extends ConfigError {
  override name = 'NotifyConfigError';
}

/** More would make one failure take minutes to deliver around; a team has a channel or two. */
const MAX_WEBHOOKS = 10;
/** Slack's and Teams' webhook URLs are well under this. */
const MAX_URL_CHARS = 2048;

/** The https URLs among `raw` (http only on loopback); a bad one is reported by its number in `source` and skipped. */
export function acceptWebhooks(
  raw: readonly unknown[],
  source: string,
  log: (line: string) => void,
): string[] {
  const urls: string[] = [];
  for (const [index, entry] of raw.slice(0, MAX_WEBHOOKS).entries()) {
    let url: URL | undefined;
    try {
      url = typeof entry === 'string' && entry.length <= MAX_URL_CHARS ? new URL(entry.trim()) : undefined;
    } catch {
      url = undefined;
    }
    if (url?.protocol === 'https:' || (url?.protocol === 'http:' && isLoopback(url.hostname)))
      urls.push(String(entry).trim());
    else
      log(`notify: webhook #${index + 1} of ${source} is not an https URL (http only on loopback): skipped`);
  }
  if (raw.length > MAX_WEBHOOKS)
    log(`notify: ${source} names ${raw.length} webhooks; only the first ${MAX_WEBHOOKS} are told`);
  return urls;
}

/** The webhooks the environment names (DUMP_BAG_NOTIFY_URL); a malformed one is reported by number and skipped. */
export function webhooksFromEnv(
  env: Record<string, string | undefined>,
  log: (line: string) => void,
): string[] {
  return acceptWebhooks(parseList(setting('notifyUrl', env)), SETTINGS.notifyUrl.env, log);
}

/**
 * The webhooks a Secrets Manager secret holds: a JSON list of URLs, or one URL. The value is a
 * secret: errors say what shape is wrong, never what it holds.
 */
export function webhooksFromSecret(value: string, source: string, log: (line: string) => void): string[] {
  const text = value.trim();
  let raw: unknown = text;
  if (text.startsWith('[') || text.startsWith('{') || text.startsWith('"')) {
    try {
      raw = JSON.parse(text);
    } catch {
      raw = undefined;
    }
  }
  const list = Array.isArray(raw) ? raw : typeof raw === 'string' && raw !== '' ? [raw] : undefined;
  if (!list) {
    throw new NotifyConfigError(
      `${source} holds neither a JSON list of webhook URLs nor one URL: put ["https://hooks.slack.com/services/…"] in it (aws secretsmanager put-secret-value)`,
    );
  }
  const urls = acceptWebhooks(list, source, log);
  if (urls.length === 0) {
    throw new NotifyConfigError(
      `${source} holds no usable webhook URL (https only): put ["https://hooks.slack.com/services/…"] in it (aws secretsmanager put-secret-value)`,
    );
  }
  return urls;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(host);
}
