/**
 * The path of a Lanyard server's own SPIFFE ID in its trust domain: the CA issues the server SVID under it,
 * clients accept a server only under it, and audit trace recognises the server's own chain by it.
 */
export const SERVER_ID_PATH = '/lanyard/server';
