import { Duration, Token } from 'aws-cdk-lib';
import { Construct, type IConstruct } from 'constructs';

/** A construct prop that cannot work. The message names the construct path, the prop, the value and the fix. */
export class InvalidPropError extends Error {
  override readonly name = 'InvalidPropError';

  constructor(
    /** The construct's path in the tree, e.g. `DumpBag/Dumps`. */
    readonly path: string,
    /** The prop as the caller writes it, e.g. `objectLock.days`. */
    readonly prop: string,
    message: string,
  ) {
    super(message);
  }
}

/** One rule about one prop, as the construct that owns the prop states it. */
export interface PropRule<T> {
  /** The prop as the caller writes it: `port`, `objectLock.days`, `schedules[1]`. */
  readonly prop: string;
  /** The value given (or the props involved, for a combination); shown in the message. */
  readonly value: T;
  /**
   * True when the value can work: a predicate, never called on a value holding an unresolved token,
   * or, for a rule about which props are given together, a boolean (tokens do not matter to it).
   */
  readonly valid: boolean | ((value: T) => boolean);
  /** The rule, read after the prop's name: "must be a TCP port from 1 to 65535". */
  readonly rule: string;
  /** What to do instead, naming the cdk.json context key where there is one. */
  readonly fix: string;
}

/** A token is known only at deploy time: CloudFormation or the service checks it then. */
function unresolved(value: unknown): boolean {
  if (value instanceof Duration) return value.isUnresolved();
  if (Array.isArray(value)) return Token.isUnresolved(value) || value.some(unresolved);
  return Token.isUnresolved(value);
}

function holds(rule: PropRule<unknown>): boolean {
  if (typeof rule.valid === 'boolean') return rule.valid;
  return unresolved(rule.value) || rule.valid(rule.value);
}

/** The value as the caller wrote it; constructs (a VPC, a security group) by their path. */
function shown(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value instanceof Duration) return value.toHumanString();
  if (typeof value === 'number') return String(value);
  const text = JSON.stringify(value, (_key, v: unknown) => (Construct.isConstruct(v) ? v.node.path : v));
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** The one check every construct's `validate…Props` runs: throws InvalidPropError when the rule fails. */
export function checkProp<T>(scope: IConstruct, rule: PropRule<T>): void {
  if (holds(rule as PropRule<unknown>)) return;
  const path = scope.node.path;
  throw new InvalidPropError(
    path,
    rule.prop,
    `${path}: \`${rule.prop}\` ${rule.rule}, got ${shown(rule.value)}; ${rule.fix}`,
  );
}

/** A predicate that also accepts `undefined` (a prop left out takes its default). */
export function optional<T>(valid: (value: T) => boolean): (value: T | undefined) => boolean {
  return (value) => value === undefined || valid(value);
}

/** Whole numbers from `min` to `max`. */
export function wholeNumber(min: number, max = Number.POSITIVE_INFINITY): (value: number) => boolean {
  return (value) => Number.isInteger(value) && value >= min && value <= max;
}

/** One of the listed values. */
export function oneOf<T>(allowed: readonly T[]): (value: T) => boolean {
  return (value) => allowed.includes(value);
}
