/** What the Fargate entry point reads, apart from the dump's own settings (infra sets them). */

/** Set per run by the state machine's container override. */
export const TASK_TOKEN_ENV = 'DUMP_BAG_TASK_TOKEN';
export const TASK_INPUT_ENV = 'DUMP_BAG_TASK_INPUT';
/** The task state's ceiling in seconds, set by the task definition. */
export const TASK_TIMEOUT_ENV = 'DUMP_BAG_TASK_TIMEOUT_SECONDS';
/** Well inside the task state's HeartbeatSeconds (TASK_HEARTBEAT_SECONDS). */
export const HEARTBEAT_MS = 60_000;
/** How long the state machine waits without a heartbeat; covers the image pull and unpacking the layers. */
export const TASK_HEARTBEAT_SECONDS = 600;
