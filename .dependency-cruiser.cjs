/**
 * The layering of src/ (issue 14), checked by `npm run lint`. A folder may import its own layer's other
 * folders and every layer below it, never a layer above; no cycle between folders is allowed, and the
 * peers of the top runtime layer have a fixed direction.
 *
 *   5  cli  index.ts  entry                    the command, the package root and subpath entries
 *   4  server  agent  hop  client              runtimes and verifier-side helpers
 *        agent -> client (attests with it);  hop -> client (reads X509Sources, redeems handoffs)
 *        server: none of agent/client/hop;   client: none of agent/server/hop;  hop: not server/agent
 *   3  ca  attest  verify  store  audit  policy
 *        today: ca -> verify, store;  attest -> verify, store;  store -> audit  (any cycle fails)
 *   2  x509  bundle  svid                      bundle -> x509;  svid -> x509
 *   1  spiffe
 *   0  internal  errors.ts                     helpers shared across layers (errors.ts: spiffe types only)
 *
 * Subfolders hold the same no-cycle rule. In server/: attestation, sessions, node -> auth (resolveCaller, admin
 * guard) -> issuance (signing, workload context), tls (peer SVID); sessions, registration -> audit; the wiring
 * that knows every service (services.ts, audit-listener.ts) sits at server/'s root.
 * src/gen/ (ts-proto output) imports only itself; server, agent, client, hop and cli may use it.
 */
const LAYERS = [
  ['internal', 'errors.ts'],
  ['spiffe'],
  ['x509', 'bundle', 'svid'],
  ['ca', 'attest', 'verify', 'store', 'audit', 'policy'],
  ['server', 'agent', 'hop', 'client'],
  ['cli', 'index.ts', 'entry'],
];

/** Imports between peers of layer 4 that are not allowed (the others in that layer are). */
const PEER_FORBIDDEN = {
  server: ['agent', 'client', 'hop'],
  client: ['agent', 'server', 'hop'],
  hop: ['server', 'agent'],
  agent: ['server', 'hop'],
};

const GEN_USERS = ['server', 'agent', 'client', 'hop', 'cli'];

/** A path pattern for top-level entries of src/: a folder matches everything under it, a file itself. */
const entries = (names) =>
  `^src/(${names.map((n) => (n.endsWith('.ts') ? n.replace('.', '\\.') + '$' : `${n}/`)).join('|')})`;

const upward = LAYERS.slice(0, -1).map((layer, i) => ({
  name: `layer-${i}-no-upward`,
  comment: `${layer.join(', ')} may not import from a higher layer (${LAYERS.slice(i + 1)
    .flat()
    .join(', ')})`,
  severity: 'error',
  from: { path: entries(layer) },
  to: { path: entries(LAYERS.slice(i + 1).flat()) },
}));

// errors.ts names the SPIFFE ID rules in a type (spiffe/rules.ts imports nothing): the one upward import allowed,
// and only as a type.
upward[0].from = { path: entries(['internal']) };
upward.push({
  ...upward[0],
  name: 'errors-no-upward-values',
  comment: 'errors.ts may import from higher layers only types',
  from: { path: entries(['errors.ts']) },
  to: { ...upward[0].to, dependencyTypesNot: ['type-only'] },
});

const peers = Object.entries(PEER_FORBIDDEN).map(([from, to]) => ({
  name: `no-${from}-to-${to.join('-')}`,
  comment: `${from} may not import ${to.join(', ')}`,
  severity: 'error',
  from: { path: entries([from]) },
  to: { path: entries(to) },
}));

module.exports = {
  forbidden: [
    ...upward,
    ...peers,
    {
      name: 'no-folder-cycles',
      comment: 'no two folders of src/ may depend on each other, however indirectly',
      severity: 'error',
      scope: 'folder',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'gen-only-from-transport-layers',
      comment: `generated protobuf code is used only by ${GEN_USERS.join(', ')}`,
      severity: 'error',
      from: { path: '^src/', pathNot: entries(['gen', ...GEN_USERS]) },
      to: { path: '^src/gen/' },
    },
    {
      name: 'gen-is-self-contained',
      comment: 'generated code imports only generated code and packages',
      severity: 'error',
      from: { path: '^src/gen/' },
      to: { path: '^src/', pathNot: '^src/gen/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    includeOnly: '^src/',
    // Type-only imports count: a type from a higher layer still couples the lower one to it.
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    reporterOptions: { text: { highlightFocused: true } },
  },
};
