// Loaded by mocha before every suite (.mocharc.json). CLI processes spawned by tests run the TypeScript
// sources, never a dist/ left over from an earlier build.
process.env.LANYARD_FROM_SOURCE = '1';
