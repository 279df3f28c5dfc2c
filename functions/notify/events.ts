/**
 * What the notifier is woken by, turned into notices: the backup's "Dump Finished" event of a failed
 * database, a failed execution of the backup, and an alarm from the alarm topic. Every event is
 * hostile input: shapes are checked, strings bounded, and anything else is skipped with a reason.
 */
import type { Notice } from '../core/notify';
import { DATABASE_DIMENSION, DUMP_SUCCEEDED_METRIC, KEY_EXPIRES_IN_DAYS_METRIC } from '../shared/metrics';

/** The state machine's per-dump event (infra/constructs/backup-workflow.ts DUMP_EVENT_*). */
export const DUMP_EVENT = { source: 'dump-bag', detailType: 'Dump Finished' } as const;
/** Step Functions' own event for an execution that changed status. */
export const EXECUTION_EVENT = {
  source: 'aws.states',
  detailType: 'Step Functions Execution Status Change',
} as const;
/** The state machine's Fail state when databases failed: each was already told by its own event. */
export const DUMPS_FAILED_ERROR = 'DumpsFailed';
/** The scheduler's input for the daily digest. */
export const DIGEST_ACTION = 'digest';

/** SNS carries at most 256 KiB; an alarm's message is a few KiB. */
const MAX_MESSAGE_CHARS = 256 * 1024;
/** Names, dimensions and ARNs are far shorter; a longer one is cut, not trusted. */
const MAX_FIELD_CHARS = 1024;
/** An error's cause: a message with a stack trace's head, not a whole log. */
const MAX_CAUSE_CHARS = 4096;

export interface Parsed {
  readonly notices: Notice[];
  /** Why parts of the event were not told (logged; not an error). */
  readonly skipped: string[];
}

type Json = Record<string, unknown>;

function isObject(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** A bounded string field, or undefined when it is not a string. */
function field(object: Json, name: string, max = MAX_FIELD_CHARS): string | undefined {
  const value = object[name];
  return typeof value === 'string' ? value.slice(0, max) : undefined;
}

/** The console page of an execution, from its ARN; undefined for anything else. */
export function executionLink(arn: unknown): string | undefined {
  if (typeof arn !== 'string' || arn.length > MAX_FIELD_CHARS) return undefined;
  const m = /^arn:(aws|aws-cn|aws-us-gov):states:([a-z0-9-]+):\d{12}:execution:[^\s:/]+:[^\s:/]+$/.exec(arn);
  if (!m) return undefined;
  const [, partition, region] = m as unknown as [string, string, string];
  const host =
    partition === 'aws-cn'
      ? 'console.amazonaws.cn'
      : partition === 'aws-us-gov'
        ? 'console.amazonaws-us-gov.com'
        : 'console.aws.amazon.com';
  return `https://${region}.${host}/states/home?region=${region}#/v2/executions/details/${encodeURIComponent(arn)}`;
}

/** A "Dump Finished" event: one notice when its database failed, none when it succeeded. */
function dumpFinished(detail: Json, stateMachineArn: string | undefined): Parsed {
  if (stateMachineArn !== undefined && detail.stateMachine !== stateMachineArn)
    return { notices: [], skipped: ['a Dump Finished event of another state machine'] };
  if (detail.status === 'ok')
    return { notices: [], skipped: ['a successful dump (the digest counts those)'] };
  const database = field(detail, 'database');
  if (database === undefined || database === '')
    return { notices: [], skipped: ['a Dump Finished event without a database'] };
  const link = executionLink(detail.execution);
  return {
    notices: [
      {
        kind: 'database-failed',
        database,
        cause:
          field(detail, 'error', MAX_CAUSE_CHARS) ?? `status ${String(field(detail, 'status') ?? 'unknown')}`,
        ...(link ? { executionLink: link } : {}),
      },
    ],
    skipped: [],
  };
}

/** The statuses of a run worth telling; the FailedRuns rule takes only these. */
const FAILED_RUN_STATUSES = ['FAILED', 'TIMED_OUT', 'ABORTED'];

function isExecutionEvent(event: Json): event is Json & { detail: Json } {
  return (
    isObject(event.detail) &&
    event.source === EXECUTION_EVENT.source &&
    event['detail-type'] === EXECUTION_EVENT.detailType
  );
}

/**
 * The execution to ask DescribeExecution for: a failed run of this state machine whose event has no
 * `error` (AWS's schema of the event does not promise `error` or `cause`). Undefined for any other event.
 */
export function executionToDescribe(event: unknown, stateMachineArn: string | undefined): string | undefined {
  if (!isObject(event) || !isExecutionEvent(event)) return undefined;
  const { detail } = event;
  if (stateMachineArn !== undefined && detail.stateMachineArn !== stateMachineArn) return undefined;
  // A null or non-string error is none.
  if (!FAILED_RUN_STATUSES.includes(String(field(detail, 'status'))) || field(detail, 'error') !== undefined)
    return undefined;
  // A well-formed execution ARN only: anything else is not sent on to the API.
  return executionLink(detail.executionArn) ? (detail.executionArn as string) : undefined;
}

/**
 * The event with the `error` and `cause` DescribeExecution answered in its detail, as the parse reads
 * them; the answer is hostile input too: only strings are taken, bounded as `field()` bounds them.
 */
export function withDescribedError(event: unknown, described: unknown): unknown {
  if (!isObject(event) || !isExecutionEvent(event) || !isObject(described)) return event;
  const error = field(described, 'error');
  const cause = field(described, 'cause', MAX_CAUSE_CHARS);
  return {
    ...event,
    detail: {
      ...event.detail,
      ...(error === undefined ? {} : { error }),
      ...(cause === undefined ? {} : { cause }),
    },
  };
}

/** An execution that failed, timed out or was stopped before (or without) its databases' own events. */
function executionChanged(detail: Json, stateMachineArn: string | undefined): Parsed {
  if (stateMachineArn !== undefined && detail.stateMachineArn !== stateMachineArn)
    return { notices: [], skipped: ['an execution of another state machine'] };
  const status = field(detail, 'status') ?? 'unknown';
  if (!FAILED_RUN_STATUSES.includes(status))
    return { notices: [], skipped: [`an execution that is ${status}`] };
  const error = field(detail, 'error');
  if (error === DUMPS_FAILED_ERROR)
    return { notices: [], skipped: ['a run whose failed databases were told one by one'] };
  const cause = [status, error, field(detail, 'cause', MAX_CAUSE_CHARS)].filter((p) => p).join(': ');
  const link = executionLink(detail.executionArn);
  return {
    notices: [
      {
        kind: 'database-failed',
        database: '(every database)',
        cause,
        ...(link ? { executionLink: link } : {}),
      },
    ],
    skipped: [],
  };
}

/** The days left in a KeyExpiresInDays alarm's reason: "… [12.0 (02/12/26 03:00:00)] was less than …". */
function daysLeftIn(reason: string): number | undefined {
  const m = /\[(\d{1,5})(?:\.\d+)? \(/.exec(reason);
  return m ? Number(m[1]) : undefined;
}

/** The Database dimension of an alarm's trigger, if it has one (a per-database staleness alarm). */
function databaseDimension(dimensions: unknown): string | undefined {
  if (!Array.isArray(dimensions)) return undefined;
  const found = dimensions.filter(isObject).find((d) => d.name === DATABASE_DIMENSION);
  return typeof found?.value === 'string' ? found.value : undefined;
}

/** A CloudWatch alarm's SNS message: a staleness or key-expiry alarm becomes one notice. */
export function alarmNotices(message: unknown): Parsed {
  if (typeof message !== 'string' || message.length > MAX_MESSAGE_CHARS)
    return { notices: [], skipped: ['an SNS message that is not a bounded text'] };
  let alarm: unknown;
  try {
    alarm = JSON.parse(message);
  } catch {
    return { notices: [], skipped: ['an SNS message that is not JSON'] };
  }
  if (!isObject(alarm)) return { notices: [], skipped: ['an SNS message that is not an alarm'] };
  const name = field(alarm, 'AlarmName', 255);
  if (!name || !isObject(alarm.Trigger))
    return { notices: [], skipped: ['an SNS message that is not an alarm'] };
  if (alarm.NewStateValue !== 'ALARM')
    return { notices: [], skipped: [`${name} went to ${String(field(alarm, 'NewStateValue', 32))}`] };
  const reason = field(alarm, 'NewStateReason', 4096) ?? '';
  const metric = field(alarm.Trigger, 'MetricName');
  if (metric === DUMP_SUCCEEDED_METRIC) {
    const database = databaseDimension(alarm.Trigger.Dimensions);
    return {
      notices: [
        {
          kind: 'bag-stale',
          alarm: name,
          reason,
          ...(database ? { database: database.slice(0, MAX_FIELD_CHARS) } : {}),
        },
      ],
      skipped: [],
    };
  }
  if (metric === KEY_EXPIRES_IN_DAYS_METRIC) {
    const daysLeft = daysLeftIn(reason);
    return {
      notices: [{ kind: 'key-expiring', alarm: name, ...(daysLeft === undefined ? {} : { daysLeft }) }],
      skipped: [],
    };
  }
  // The failed-execution alarm: its runs are told by their own events, with the cause.
  return { notices: [], skipped: [`${name}: an alarm told through the backup's events instead`] };
}

/** Every notice an invocation's event holds (an EventBridge event, or SNS records). */
export function noticesOf(event: unknown, stateMachineArn: string | undefined): Parsed {
  if (!isObject(event)) return { notices: [], skipped: ['an event that is not an object'] };
  if (Array.isArray(event.Records)) {
    const parts = event.Records.slice(0, 100).map((record: unknown) =>
      isObject(record) && record.EventSource === 'aws:sns' && isObject(record.Sns)
        ? alarmNotices(record.Sns.Message)
        : { notices: [], skipped: ['a record that is not from SNS'] },
    );
    return { notices: parts.flatMap((p) => p.notices), skipped: parts.flatMap((p) => p.skipped) };
  }
  const detail = isObject(event.detail) ? event.detail : undefined;
  if (detail && event.source === DUMP_EVENT.source && event['detail-type'] === DUMP_EVENT.detailType)
    return dumpFinished(detail, stateMachineArn);
  if (isExecutionEvent(event)) return executionChanged(event.detail, stateMachineArn);
  return { notices: [], skipped: ['an event the notifier does not know'] };
}
