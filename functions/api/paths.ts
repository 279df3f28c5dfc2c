/**
 * One path segment for a database name or dump id, as the API expects it: percent-encoded once.
 * A name that is only dots is encoded too, since clients and proxies resolve a literal `.` or `..`
 * segment instead of sending it.
 */
export function encodePathSegment(value: string): string {
  return /^\.{1,2}$/.test(value) ? value.replace(/\./g, '%2E') : encodeURIComponent(value);
}

/** The API path of one dump, or of its download URL. */
export function dumpPath(database: string, id: string, suffix: '' | '/url' = ''): string {
  return `/dumps/${encodePathSegment(database)}/${encodePathSegment(id)}${suffix}`;
}
