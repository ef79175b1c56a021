// Loaded by mocha before every suite (.mocharc.json). CLI processes spawned by tests run the TypeScript
// sources, never a dist/ left over from an earlier build.
import { removeTempDirs } from './support/tmp';

process.env.LANYARD_FROM_SOURCE = '1';

/** Root hooks (mocha picks up `mochaHooks` from a required file): temp dirs go when the run ends. */
export const mochaHooks = {
  afterAll(): void {
    removeTempDirs();
  },
};
