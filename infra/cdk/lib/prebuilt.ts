/**
 * The functions this package carries: eddo's four arm64 bootstraps, built by cargo-lambda (the
 * workspace's release profile) from the release the package is, in the same CI run that packs it
 * (infra/scripts/cdk-package.sh). Its manifest names each file's SHA-256 and the source they were
 * built from; a file that does not match fails synth rather than deploy something else.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';

/** Where the package carries its functions and its checker (assets/, beside dist/). */
export const ASSETS = path.resolve(__dirname, '..', '..', 'assets');
const MANIFEST = path.join(ASSETS, 'manifest.json');

/** What the package's manifest says of its prebuilt functions. */
interface Manifest {
  /** The package's version, which the functions are. */
  readonly version: string;
  /** The commit they were built from, and the digest of the sources there. */
  readonly commit: string;
  readonly source: string;
  /** Each function's bootstrap's SHA-256, by binary. */
  readonly functions: Record<string, string>;
}

/** The package's prebuilt functions, checked against its manifest. */
export class Prebuilt {
  /** Whether this package carries prebuilt functions. */
  public static carried(): boolean {
    return existsSync(MANIFEST);
  }

  /** Reads the manifest; throws when the package carries none. */
  public static load(): Prebuilt {
    let manifest: Manifest;
    try {
      manifest = JSON.parse(readFileSync(MANIFEST, 'utf-8')) as Manifest;
    } catch (e) {
      throw new Error(`Eddo: functionsFrom PREBUILT, but this package carries no prebuilt functions (${(e as Error).message}): ` +
        'install the published package, or build from a workspace with FunctionsFrom.SOURCE');
    }
    return new Prebuilt(manifest);
  }

  private readonly checked = new Set<string>();

  private constructor(public readonly manifest: Manifest) {}

  /**
   * The folder holding `binary`'s bootstrap (what Lambda's code asset is), once its bytes are
   * the manifest's.
   */
  public code(binary: string): string {
    const dir = path.join(ASSETS, 'functions', binary);
    if (!this.checked.has(binary)) {
      const expected = this.manifest.functions[binary];
      const file = path.join(dir, 'bootstrap');
      const actual = existsSync(file) ? createHash('sha256').update(readFileSync(file)).digest('hex') : 'no file';
      if (expected === undefined || actual !== expected) {
        throw new Error(`Eddo: the prebuilt ${binary} (${file}: ${actual}) is not the one the package's manifest names ` +
          `(${expected ?? 'none'}): reinstall the package`);
      }
      this.checked.add(binary);
    }
    return dir;
  }
}
