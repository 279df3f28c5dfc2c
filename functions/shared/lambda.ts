import { Logger } from '@aws-lambda-powertools/logger';

/** The part of the Lambda context the handlers use; @types/aws-lambda is not a dependency. */
export interface LambdaContext {
  readonly functionName: string;
  readonly functionVersion: string;
  readonly invokedFunctionArn: string;
  readonly memoryLimitInMB: string;
  readonly awsRequestId: string;
  getRemainingTimeInMillis(): number;
}

/** One structured JSON logger per function; its service name comes from POWERTOOLS_SERVICE_NAME. */
export const logger = new Logger();
