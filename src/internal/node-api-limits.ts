/**
 * Limits of the Node API that both of its ends hold: the server refuses a call past them and the node agent
 * never makes one, so the two must read the same number.
 */

/** Most CSRs in one BatchNewX509Svid: bounds the work one call can ask for. */
export const MAX_X509_SVID_BATCH = 64;
