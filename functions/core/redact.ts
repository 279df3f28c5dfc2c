/** Blanks every secret out of a text meant for a log, a result or an execution's error. */
export function redact(text: string, secrets: readonly (string | undefined)[]): string {
  return secrets
    .filter((s): s is string => typeof s === 'string' && s.length > 0)
    .reduce((out, secret) => out.split(secret).join('***'), text);
}
