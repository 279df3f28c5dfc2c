import { createHash } from 'node:crypto';
import { ListExecutionsCommand, type SFNClient, StartExecutionCommand } from '@aws-sdk/client-sfn';
import { dumpId } from '../core/naming';
import { ConflictError } from './errors';

/** Pages of running executions read at most (1,000 each), so a flood of them cannot stall the request. */
const MAX_PAGES = 5;

/** Every on-demand execution of one database starts with this: the name says which database, without naming it. */
export function executionPrefix(database: string): string {
  return `manual-${createHash('sha256').update(database, 'utf8').digest('hex').slice(0, 24)}-`;
}

/**
 * One name per database and second: Step Functions runs a name once, so a double click racing past
 * the check below gets the same execution back (or ExecutionAlreadyExists); 7 + 24 + 15 of 80 characters.
 */
export function executionName(database: string, now: Date): string {
  return `${executionPrefix(database)}${dumpId(now)}`;
}

function errorName(error: unknown): string | undefined {
  const name = (error as { name?: unknown } | undefined)?.name;
  return typeof name === 'string' ? name : undefined;
}

/**
 * Starts an on-demand dump of one database as an execution of the backup state machine, unless one
 * of that database is running: then a ConflictError (409) names it. Needs states:ListExecutions on
 * the state machine besides states:StartExecution. Returns the execution's ARN.
 */
export async function startOnDemandDump(
  sfn: SFNClient,
  stateMachineArn: string,
  database: string,
  now = new Date(),
): Promise<string | undefined> {
  const prefix = executionPrefix(database);
  let nextToken: string | undefined;
  let pages = 0;
  do {
    const page = await sfn.send(
      new ListExecutionsCommand({ stateMachineArn, statusFilter: 'RUNNING', maxResults: 1000, nextToken }),
    );
    const running = page.executions?.find((e) => e.name?.startsWith(prefix));
    if (running) {
      const since = running.startDate instanceof Date ? `, started ${running.startDate.toISOString()}` : '';
      throw new ConflictError(
        `a dump of this database is already running (execution ${running.name}${since}); try again when it has finished`,
      );
    }
    nextToken = page.nextToken;
  } while (nextToken && ++pages < MAX_PAGES);
  const name = executionName(database, now);
  try {
    const started = await sfn.send(
      new StartExecutionCommand({
        stateMachineArn,
        name,
        input: JSON.stringify({ databases: [database], trigger: 'manual' }),
      }),
    );
    return started.executionArn;
  } catch (error: unknown) {
    if (errorName(error) === 'ExecutionAlreadyExists') {
      throw new ConflictError(
        `a dump of this database was started this very second (execution ${name}); try again in a moment`,
      );
    }
    throw error;
  }
}
