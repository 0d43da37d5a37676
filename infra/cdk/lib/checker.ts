/**
 * The packaged checker: eddo's own CLI (`eddo policy ...`, the functions' parser) compiled to
 * WebAssembly (wasm32-wasip1) and run by Node.js's WASI, so a synth needs neither cargo nor a
 * native binary. `node checker.js policy params --json FILE` is `eddo policy params --json FILE`:
 * the same arguments, output and exit status. Each file argument's folder is the only one the
 * module may read.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { ASSETS } from './prebuilt';

/** Where the package carries the module. */
export const PACKAGED_CHECKER = path.join(ASSETS, 'eddo.wasm');

/** Whether this package carries the checker. */
export function hasPackagedChecker(): boolean {
  return existsSync(PACKAGED_CHECKER);
}

/** The command that runs the packaged checker (its arguments follow). */
export function packagedCheckerCommand(): string[] {
  return [process.execPath, '--no-warnings', __filename];
}

/** What this file needs of the WebAssembly global (not in the ES2022 library). */
interface WebAssemblyApi {
  Module: new (bytes: Buffer) => object;
  Instance: new (module: object, imports: object) => object;
}

/** Runs the module with `args`, its output on this process's; returns its exit status. */
export function runChecker(args: string[], wasm: string = PACKAGED_CHECKER): number {
  const preopens: Record<string, string> = {};
  for (const arg of args) {
    if (path.isAbsolute(arg) && existsSync(arg) && statSync(arg).isFile()) {
      const dir = path.dirname(arg);
      preopens[dir] = dir;
    }
  }
  // Loaded here, not at import: Node.js warns that WASI is experimental when it loads, and a
  // synth that does not run the checker has no reason to.
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const { WASI } = require('node:wasi') as typeof import('node:wasi');
  const wasi = new WASI({ version: 'preview1', args: ['eddo', ...args], env: {}, preopens, returnOnExit: true });
  const wasmApi = (globalThis as unknown as { WebAssembly: WebAssemblyApi }).WebAssembly;
  const instance = new wasmApi.Instance(new wasmApi.Module(readFileSync(wasm)), wasi.getImportObject());
  return wasi.start(instance);
}

/**
 * `eddo`'s arguments with its file arguments made absolute (for the preopens): after the two
 * command words (`policy params`), every argument naming a file. The command words stay as they
 * are, whatever the folder holds (an app keeps its policy in `policy/`).
 */
export function checkerArgs(argv: string[]): string[] {
  return argv.map((a, i) => (i >= 2 && !a.startsWith('-') && existsSync(a) && statSync(a).isFile() ? path.resolve(a) : a));
}

if (require.main === module) {
  process.exitCode = runChecker(checkerArgs(process.argv.slice(2)));
}
