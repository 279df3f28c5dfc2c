/**
 * A failed run's status event may come without its `error` and `cause` (AWS's schema of the event
 * does not promise them): the notifier asks Step Functions. Without the error, a run whose databases
 * were each told already would be told once more, and any other failure would go without its cause.
 */
import { DescribeExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import { errorMessage } from '../core/errors';
import { executionToDescribe, withDescribedError } from './events';

/** A notice waits this long for the answer, then goes out with the status alone. */
export const DESCRIBE_TIMEOUT_MS = 5_000;

export interface DescribeOptions {
  /** Why the error stayed unknown, when the lookup failed. */
  readonly log: (line: string) => void;
  /** @default DESCRIBE_TIMEOUT_MS */
  readonly timeoutMs?: number;
}

/** The event, with its execution's error and cause from DescribeExecution when it had none; never throws. */
export async function withExecutionError(
  event: unknown,
  stateMachineArn: string | undefined,
  sfn: SFNClient,
  options: DescribeOptions,
): Promise<unknown> {
  const executionArn = executionToDescribe(event, stateMachineArn);
  if (executionArn === undefined) return event;
  const timeoutMs = options.timeoutMs ?? DESCRIBE_TIMEOUT_MS;
  const signal = AbortSignal.timeout(timeoutMs);
  try {
    const described = await sfn.send(new DescribeExecutionCommand({ executionArn }), { abortSignal: signal });
    // Typed by the SDK, not checked by it: withDescribedError takes strings only.
    return withDescribedError(event, { error: described.error, cause: described.cause });
  } catch (error: unknown) {
    const why = signal.aborted ? `no answer within ${timeoutMs} ms` : errorMessage(error).slice(0, 300);
    const fix =
      error instanceof Error && error.name === 'AccessDeniedException'
        ? "; grant the notifier's role states:DescribeExecution on this state machine's executions"
        : '';
    options.log(
      `notify: DescribeExecution of ${executionArn} failed (${why}): the run is told with its status only${fix}`,
    );
    return event;
  }
}
