import { LanyardError } from '../errors';

/**
 * Every refusal an attestor makes on its own account: unknown attestor, malformed evidence, a JWT for another
 * audience or issuer, a failed challenge. Failures it inherits keep their own classes (JoinTokenError from the
 * store, PathValidationError from path validation), so a caller branches on `code`, never on the class.
 * Messages name what was wrong and never contain the evidence itself.
 */
export class AttestationError extends LanyardError {}
