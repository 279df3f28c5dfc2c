import jsonata from 'jsonata';

type Json = Record<string, unknown>;

/** What a task state calls: Lambda by its (rendered) function ARN, EventBridge PutEvents. */
export interface TwinServices {
  invokeLambda(functionArn: string, payload: unknown): Promise<{ ok: true; payload: unknown } | TaskError>;
  putEvents(entries: Json[]): Promise<void>;
  /** ecs:runTask.waitForTaskToken: starts the task and resolves with what it sent back for the token. */
  runTask?(args: Json, taskToken: string): Promise<{ ok: true; payload: unknown } | TaskError>;
}

export interface TaskError {
  readonly ok: false;
  readonly error: string;
  readonly cause: string;
}

export type ExecutionOutcome =
  | { readonly status: 'SUCCEEDED'; readonly output: unknown }
  | { readonly status: 'FAILED'; readonly error: string; readonly cause: string };

interface StatesVars {
  input: unknown;
  result?: unknown;
  errorOutput?: { Error: string; Cause: string };
  context: Json;
  /** Variables set by Assign, visible as `$name` (one scope per Map iteration). */
  variables?: Json;
}

class StateFailure extends Error {
  constructor(
    readonly errorName: string,
    readonly errorCause: string,
  ) {
    super(`${errorName}: ${errorCause}`);
  }
}

/** Evaluates every `{% … %}` string in a value with `$states` bound, as Step Functions' JSONata mode does. */
async function evaluate(value: unknown, states: StatesVars): Promise<unknown> {
  if (typeof value === 'string') {
    const m = /^\{%([\s\S]*)%\}$/.exec(value);
    if (!m) return value;
    const result = await jsonata(m[1] as string).evaluate({}, { ...states.variables, states });
    // JSONata sequences are arrays with extra flags; Step Functions hands on plain JSON.
    return result === undefined ? undefined : JSON.parse(JSON.stringify(result));
  }
  if (Array.isArray(value)) return Promise.all(value.map((v) => evaluate(v, states)));
  if (value && typeof value === 'object') {
    const out: Json = {};
    for (const [k, v] of Object.entries(value)) {
      const e = await evaluate(v, states);
      if (e !== undefined) out[k] = e;
    }
    return out;
  }
  return value;
}

/**
 * Runs a state machine definition (the JSONata-mode subset the backup uses: Task for
 * lambda:invoke and events:putEvents, Map, Pass, Choice, Succeed, Fail, Catch) against local
 * services, so the template's own expressions move the data from plan to dump to report.
 */
export async function runStateMachine(
  definition: Json,
  input: unknown,
  services: TwinServices,
  context: Json = { Execution: { Id: 'twin-execution' }, StateMachine: { Id: 'twin-state-machine' } },
): Promise<ExecutionOutcome> {
  try {
    return { status: 'SUCCEEDED', output: await runStates(definition, input, services, context) };
  } catch (error: unknown) {
    if (error instanceof StateFailure)
      return { status: 'FAILED', error: error.errorName, cause: error.errorCause };
    throw error;
  }
}

// biome-ignore lint/complexity/noExcessiveCognitiveComplexity: an interpreter of the state types the template uses, one flat case per type
async function runStates(
  machine: Json,
  input: unknown,
  services: TwinServices,
  context: Json,
): Promise<unknown> {
  const states = machine.States as Record<string, Json>;
  let name = machine.StartAt as string;
  let data = input;
  const variables: Json = {};
  for (;;) {
    const state = states[name];
    if (!state) throw new Error(`no state ${name}`);
    const vars: StatesVars = { input: data, context, variables };
    let output: unknown;
    let next = state.Next as string | undefined;
    switch (state.Type) {
      case 'Pass':
        output = state.Output !== undefined ? await evaluate(state.Output, vars) : data;
        break;
      case 'Succeed':
        return state.Output !== undefined ? evaluate(state.Output, vars) : data;
      case 'Fail':
        throw new StateFailure(
          String(await evaluate(state.Error, vars)),
          String(await evaluate(state.Cause, vars)),
        );
      case 'Choice': {
        const choices = state.Choices as { Condition: string; Next: string }[];
        next = state.Default as string;
        for (const choice of choices) {
          if ((await evaluate(choice.Condition, vars)) === true) {
            next = choice.Next;
            break;
          }
        }
        output = data;
        break;
      }
      case 'Task':
      case 'Map': {
        const outcome =
          state.Type === 'Task'
            ? await runTask(state, vars, services)
            : await runMap(state, vars, services, context);
        if (!outcome.ok) {
          const catcher = ((state.Catch as Json[] | undefined) ?? []).find((c) =>
            (c.ErrorEquals as string[]).some((e) => e === 'States.ALL' || e === outcome.error),
          );
          if (!catcher) throw new StateFailure(outcome.error, outcome.cause);
          const errorOutput = { Error: outcome.error, Cause: outcome.cause };
          output =
            catcher.Output !== undefined
              ? await evaluate(catcher.Output, { ...vars, errorOutput })
              : errorOutput;
          next = catcher.Next as string;
          break;
        }
        output =
          state.Output !== undefined
            ? await evaluate(state.Output, { ...vars, result: outcome.result })
            : outcome.result;
        break;
      }
      default:
        throw new Error(`the twin does not run ${String(state.Type)} states`);
    }
    // Assign (of a state that did not fail) sees the state's input, as Step Functions evaluates it.
    if (state.Assign !== undefined) Object.assign(variables, (await evaluate(state.Assign, vars)) as Json);
    if (state.End === true || next === undefined) return output;
    name = next;
    data = output;
  }
}

type Outcome = { ok: true; result: unknown } | TaskError;

async function runTask(state: Json, vars: StatesVars, services: TwinServices): Promise<Outcome> {
  const taskToken = `twin-token-${Math.random().toString(36).slice(2)}`;
  const args = (await evaluate(state.Arguments, {
    ...vars,
    context: { ...vars.context, Task: { Token: taskToken } },
  })) as Json;
  const resource = String(state.Resource);
  if (resource.endsWith(':states:::ecs:runTask.waitForTaskToken')) {
    if (!services.runTask) throw new Error('the twin was given no runTask service');
    const done = await services.runTask(args, taskToken);
    return done.ok ? { ok: true, result: done.payload } : done;
  }
  if (resource.endsWith(':states:::lambda:invoke')) {
    const invoked = await services.invokeLambda(String(args.FunctionName), args.Payload);
    return invoked.ok ? { ok: true, result: { Payload: invoked.payload, StatusCode: 200 } } : invoked;
  }
  if (resource.endsWith(':states:::events:putEvents')) {
    await services.putEvents(args.Entries as Json[]);
    return { ok: true, result: { Entries: [{ EventId: 'twin' }], FailedEntryCount: 0 } };
  }
  throw new Error(`the twin does not call ${resource}`);
}

async function runMap(
  state: Json,
  vars: StatesVars,
  services: TwinServices,
  context: Json,
): Promise<Outcome> {
  const items = (await evaluate(state.Items, vars)) as unknown[];
  if (!Array.isArray(items))
    return { ok: false, error: 'States.QueryEvaluationError', cause: 'Items is not an array' };
  const limit = Number(state.MaxConcurrency ?? 0) || items.length || 1;
  const results = new Array<unknown>(items.length);
  let next = 0;
  let failure: TaskError | undefined;
  const worker = async () => {
    while (next < items.length && !failure) {
      const index = next++;
      const itemContext = { ...context, Map: { Item: { Index: index, Value: items[index] } } };
      const itemInput =
        state.ItemSelector !== undefined
          ? await evaluate(state.ItemSelector, { input: vars.input, context: itemContext })
          : items[index];
      try {
        results[index] = await runStates(state.ItemProcessor as Json, itemInput, services, context);
      } catch (error: unknown) {
        if (!(error instanceof StateFailure)) throw error;
        failure = { ok: false, error: error.errorName, cause: error.errorCause };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, Math.max(items.length, 1)) }, worker));
  return failure ?? { ok: true, result: results };
}
