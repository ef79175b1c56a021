/**
 * `lanyard/errors`: every error the library throws, one class per code (the class fixes `code`), the families
 * they extend, the code union and the helpers that narrow on it. The root re-exports the families a verifier
 * meets; this entry is for code that handles a specific failure (e.g. `GrantExpiredError`). Loads nothing else.
 */
export * from '../errors';
