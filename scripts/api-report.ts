/**
 * The public API report (`npm run api:check`, `npm run api:update`): API Extractor reads the built declaration
 * file of each entry point in package.json "exports" and writes what it exports — every name with its full
 * signature — to api/<entry>.api.md. `api:check` fails when the built surface differs from the checked-in
 * report, so a change to the public API is made on purpose: run `npm run build && npm run api:update` and
 * commit the report with the change, where a reviewer sees it.
 *
 * Reads dist/, so it runs after `npm run build` (CI builds through `npm ci`'s prepare step).
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Extractor, ExtractorConfig, ExtractorLogLevel, type IConfigFile } from '@microsoft/api-extractor';

const root = join(__dirname, '..');
const update = process.argv.includes('--update');

interface ExportTarget {
  types?: string;
}
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  exports: Record<string, ExportTarget | string>;
};

/** `.` -> lanyard, `./client` -> lanyard-client: the report's file name. */
const reportName = (subpath: string): string =>
  subpath === '.' ? 'lanyard' : `lanyard-${subpath.slice(2).replace(/\//g, '-')}`;

const entries = Object.entries(pkg.exports).flatMap(([subpath, target]) =>
  typeof target === 'object' && target.types !== undefined
    ? [{ subpath, types: join(root, target.types) }]
    : [],
);

const scratch = mkdtempSync(join(tmpdir(), 'lanyard-api-'));
const failures: string[] = [];
try {
  for (const { subpath, types } of entries) {
    const name = reportName(subpath);
    if (!existsSync(types)) {
      failures.push(`${subpath}: ${types} is missing (run npm run build first)`);
      continue;
    }
    const configObject: IConfigFile = {
      projectFolder: root,
      mainEntryPointFilePath: types,
      compiler: {
        overrideTsconfig: {
          compilerOptions: {
            target: 'ES2022',
            lib: ['ES2023'],
            module: 'Node16',
            moduleResolution: 'Node16',
            strict: true,
            skipLibCheck: true,
            types: ['node'],
          },
          files: [types],
        },
      },
      apiReport: {
        enabled: true,
        reportFileName: name,
        reportFolder: join(root, 'api'),
        reportTempFolder: scratch,
      },
      docModel: { enabled: false },
      dtsRollup: { enabled: false },
      tsdocMetadata: { enabled: false },
      messages: {
        compilerMessageReporting: { default: { logLevel: ExtractorLogLevel.Warning } },
        extractorMessageReporting: {
          default: { logLevel: ExtractorLogLevel.Warning },
          // The package has no release stages (@public/@beta): every exported name is public.
          'ae-missing-release-tag': { logLevel: ExtractorLogLevel.None },
          // Doc coverage is reviewed in the report, not enforced here.
          'ae-undocumented': { logLevel: ExtractorLogLevel.None },
          // A type a signature uses but the entry does not export: recorded in the report, for review.
          'ae-forgotten-export': { logLevel: ExtractorLogLevel.None, addToApiReportFile: true },
        },
        tsdocMessageReporting: { default: { logLevel: ExtractorLogLevel.None } },
      },
    };
    const config = ExtractorConfig.prepare({
      configObject,
      configObjectFullPath: undefined,
      packageJsonFullPath: join(root, 'package.json'),
    });
    const result = Extractor.invoke(config, {
      localBuild: update,
      messageCallback: (m) => {
        // The bundled TypeScript is newer than ours; that is fine for reading declaration files.
        if (m.messageId === 'console-compiler-version-notice') m.handled = true;
      },
    });
    if (!result.succeeded || (!update && result.apiReportChanged)) {
      failures.push(
        `${subpath}: ${result.apiReportChanged ? `the public API differs from api/${name}.api.md` : 'API Extractor failed'}`,
      );
    } else {
      console.log(
        `ok   ${subpath} (api/${name}.api.md${update && result.apiReportChanged ? ', updated' : ''})`,
      );
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

if (failures.length > 0) {
  for (const f of failures) console.error(`FAIL ${f}`);
  if (!update) {
    console.error(
      'api:check: the public API changed. If that is intended: npm run build && npm run api:update, and commit api/.',
    );
  }
  process.exit(1);
}
