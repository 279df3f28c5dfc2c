import { DumpBagError } from '../core/errors';

/** The route exists but not for this method; `allow` lists the methods it takes. */
export class MethodNotAllowedError extends DumpBagError {
  override name = 'MethodNotAllowedError';
  constructor(
    message: string,
    readonly allow: readonly string[],
  ) {
    super(message);
  }
}

/** The request came from another site (a form posted by a page the user happened to visit). */
export class ForbiddenError extends DumpBagError {
  override name = 'ForbiddenError';
}

/** What was asked for is already under way, e.g. a dump of the same database. */
export class ConflictError extends DumpBagError {
  override name = 'ConflictError';
}
