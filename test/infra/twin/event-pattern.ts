/**
 * EventBridge's matching of an event against a rule's pattern, for the subset the stack writes:
 * lists of exact values and `anything-but`, nested objects. A `Ref` in the pattern is replaced
 * by the local stand-in of the resource it names (an unknown one throws).
 */
type Json = Record<string, unknown>;

function resolve(value: unknown, refs: Record<string, string>): unknown {
  if (value && typeof value === 'object' && 'Ref' in (value as Json)) {
    const ref = String((value as Json).Ref);
    const local = Object.entries(refs).find(([prefix]) => ref.startsWith(prefix))?.[1];
    if (local === undefined) throw new Error(`no local stand-in for Ref ${ref} in an event pattern`);
    return local;
  }
  return value;
}

function matchesValue(condition: unknown, value: unknown, refs: Record<string, string>): boolean {
  const c = resolve(condition, refs);
  if (c && typeof c === 'object' && 'anything-but' in (c as Json)) {
    const but = ([] as unknown[]).concat((c as Json)['anything-but']).map((v) => resolve(v, refs));
    return value !== undefined && !but.includes(value);
  }
  if (c && typeof c === 'object') throw new Error(`the twin does not match ${JSON.stringify(c)}`);
  return value === c;
}

export function matchesPattern(pattern: Json, event: Json, refs: Record<string, string>): boolean {
  return Object.entries(pattern).every(([key, condition]) => {
    const value = event[key];
    if (Array.isArray(condition)) return condition.some((c) => matchesValue(c, value, refs));
    if (condition && typeof condition === 'object')
      return (
        typeof value === 'object' && value !== null && matchesPattern(condition as Json, value as Json, refs)
      );
    throw new Error(`the twin does not match ${key}: ${JSON.stringify(condition)}`);
  });
}

/** An event as EventBridge hands it to a Lambda target. */
export function eventEnvelope(source: string, detailType: string, detail: unknown): Json {
  return {
    version: '0',
    id: crypto.randomUUID(),
    'detail-type': detailType,
    source,
    account: '123456789012',
    time: new Date().toISOString(),
    region: 'us-east-1',
    resources: [],
    detail,
  };
}
