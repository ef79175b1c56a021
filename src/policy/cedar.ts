/**
 * The Cedar WebAssembly module, loaded on first use. Loading it costs about 150 ms and 15 MB, which every
 * `lanyard` command and every server without policy.files would otherwise pay just by importing this folder.
 */
import type * as CedarWasm from '@cedar-policy/cedar-wasm/nodejs';

export type Cedar = typeof CedarWasm;

let loaded: Cedar | undefined;

export function cedar(): Cedar {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  loaded ??= require('@cedar-policy/cedar-wasm/nodejs') as Cedar;
  return loaded;
}
