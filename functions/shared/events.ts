import type { Trigger } from '../core/config';
import type { DatabaseInfo, ServerInfo } from '../core/databases';
import type { Runner } from '../core/runner';

/**
 * The backup state machine's input, and so the plan function's event: `{"trigger":"schedule"}`
 * from the schedule, `{"databases":["<name>"],"trigger":"manual"}` from the API's POST /dumps/{database}.
 */
export interface PlanEvent {
  readonly trigger?: Trigger;
  /** Only these databases (each must be among those the bag backs up); absent means all of them. */
  readonly databases?: readonly string[];
}

/** The plan function's result; the state machine's Map makes one dump item per database. */
export interface PlanOutput {
  readonly trigger: Trigger;
  readonly server: ServerInfo;
  readonly databases: readonly (DatabaseInfo & { readonly runner: Runner })[];
}

/** One item of the Map: the dump function's event. */
export interface DumpEvent {
  readonly database: string;
  readonly sizeBytes?: number;
  readonly server: ServerInfo;
  readonly trigger: Trigger;
  /** The plan's choice; a Lambda dump out of time may still be retried on Fargate. */
  readonly runner?: Runner;
}

/** The dump function's event for the run's one globals dump (roles, tablespaces), after the Map. */
export interface GlobalsEvent {
  readonly globals: true;
  readonly server: ServerInfo;
  readonly trigger: Trigger;
}

/** The prune step's event: a database whose dump just succeeded, and that dump's key. */
export interface PruneEvent {
  readonly database: string;
  readonly key: string;
}

/** The prune step's event after a good globals dump: that dump's key. */
export interface PruneGlobalsEvent {
  readonly globals: true;
  readonly key: string;
}
