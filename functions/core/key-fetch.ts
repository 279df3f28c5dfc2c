import { isIP } from 'node:net';
import { errorMessage, KeyError } from './errors';

/** Long enough for a slow central bag, short enough that a hung one cannot hold the plan step. */
const FETCH_TIMEOUT_MS = 15_000;
/** A team's armored keys are a few KiB each; 4 MiB leaves room for keys with many signatures. */
export const MAX_KEYS_BYTES = 4 * 1024 * 1024;
/** A `/recipients` list: fingerprints, comma-separated. */
export const MAX_RECIPIENTS_BYTES = 64 * 1024;

/** http is allowed only to the machine itself (tests, a local `serve`): nobody on a path can swap the answer. */
function isLoopback(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Throws a KeyError unless the URL may serve keys: https, or http to a loopback address. */
export function assertKeyUrl(url: string, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new KeyError(`${what}: ${url} is not a URL`);
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol === 'http:' && isLoopback(parsed.hostname)) return parsed;
  throw new KeyError(
    `${what}: ${parsed.origin} must be an https:// URL (plain http only to a loopback address): over http anyone on the path could swap in their own key`,
  );
}

/**
 * Reads a key source URL as text: https only (loopback http), no redirect followed, the answer
 * bounded in bytes and time. URL sources are read at every run so a central bag's changes apply at once.
 */
export async function fetchText(url: string, what: string, maxBytes = MAX_KEYS_BYTES): Promise<string> {
  const parsed = assertKeyUrl(url, what);
  const where = `${parsed.origin}${parsed.pathname}`;
  const signal = AbortSignal.timeout(FETCH_TIMEOUT_MS);
  let response: Response;
  try {
    response = await fetch(parsed, { signal, redirect: 'manual' });
  } catch (error) {
    throw new KeyError(`cannot fetch ${what} from ${where}: ${errorMessage(error)}`);
  }
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel().catch(() => {});
    throw new KeyError(
      `${what}: ${where} answered with a redirect (HTTP ${response.status}); redirects are refused: give the final https URL`,
    );
  }
  if (!response.ok) {
    await response.body?.cancel().catch(() => {});
    throw new KeyError(`cannot fetch ${what} from ${where}: HTTP ${response.status}`);
  }
  const declared = Number(response.headers.get('content-length') ?? 0);
  if (declared > maxBytes) {
    await response.body?.cancel().catch(() => {});
    throw new KeyError(`${what}: ${where} declares ${declared} bytes, more than the ${maxBytes} allowed`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    const reader = response.body?.getReader();
    while (reader) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.byteLength;
      if (total > maxBytes) {
        await reader.cancel().catch(() => {});
        throw new KeyError(`${what}: ${where} sent more than the ${maxBytes} bytes allowed`);
      }
      chunks.push(value);
    }
  } catch (error) {
    if (error instanceof KeyError) throw error;
    throw new KeyError(`cannot read ${what} from ${where}: ${errorMessage(error)}`);
  }
  return Buffer.concat(chunks).toString('utf8');
}
