import { Logger } from '@aws-lambda-powertools/logger';

/** The one structured JSON logger per function; its service name comes from POWERTOOLS_SERVICE_NAME, set by the construct. */
export const logger = new Logger();
