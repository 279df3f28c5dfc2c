// Runs one bundled Lambda handler the way the Node.js runtime does: require the asset's index.js,
// call `handler(event, context)`, hand the result (or the error) back to the parent process.
// argv: <index.js> ; stdin: the event as JSON ; IPC: {started} before the handler runs, then the outcome.
const { readFileSync } = require('node:fs');
const { randomUUID } = require('node:crypto');

const [, , indexJs] = process.argv;
const event = JSON.parse(readFileSync(0, 'utf8'));
const remainingMs = Number(process.env.TWIN_REMAINING_MS);
delete process.env.TWIN_REMAINING_MS;

const bundle = require(indexJs);
const deadline = Date.now() + remainingMs;
const context = {
  functionName: process.env.AWS_LAMBDA_FUNCTION_NAME,
  functionVersion: '$LATEST',
  invokedFunctionArn: `arn:aws:lambda:${process.env.AWS_REGION}:123456789012:function:${process.env.AWS_LAMBDA_FUNCTION_NAME}`,
  memoryLimitInMB: process.env.AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
  awsRequestId: randomUUID(),
  logGroupName: `/aws/lambda/${process.env.AWS_LAMBDA_FUNCTION_NAME}`,
  logStreamName: 'twin',
  callbackWaitsForEmptyEventLoop: true,
  getRemainingTimeInMillis: () => Math.max(0, deadline - Date.now()),
};

process.send({ started: true });
Promise.resolve()
  .then(() => bundle.handler(event, context))
  .then(
    (result) => process.send({ ok: true, result }, () => process.exit(0)),
    (error) =>
      process.send(
        { ok: false, errorType: error?.name ?? 'Error', errorMessage: error?.message ?? String(error) },
        () => process.exit(0),
      ),
  );
