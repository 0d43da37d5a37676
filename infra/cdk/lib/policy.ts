/**
 * The policy, read at synth by eddo's own parser (the `eddo` binary of the workspace), so the
 * construct applies exactly the rules the functions apply at run time, and a mistake fails synth
 * with the message a function would log.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { hasPackagedChecker, packagedCheckerCommand } from './checker';

/** What a policy implies for the infrastructure: every list `eddo policy params --json` prints. */
export interface PolicyLists {
  /**
   * Every service's repositories, while they fit the push rule's pattern: only their pushes start
   * the build and SAST projects. Empty when they go by owner.
   */
  readonly repositories: string[];
  /** The owners every repository of which starts them, when the repositories would not fit. */
  readonly owners: string[];
  /** The event sources other tools report gate signals from (`source` senders). */
  readonly signalSources: string[];
  /** The services' build projects. */
  readonly buildProjects: string[];
  /** The services' SAST projects. */
  readonly sastProjects: string[];
  /** Every service's branches. */
  readonly branches: string[];
  /** Each project the policy names and the `eddo:role` tag the grants reach it by. */
  readonly projectRoles: { [project: string]: string };
}

/** A policy file read and checked: its text (what the stack stores) and what it implies. */
export interface CheckedPolicy {
  readonly file: string;
  readonly text: string;
  readonly lists: PolicyLists;
}

/** The workspace's `Cargo.toml`: two levels above this package. */
export const WORKSPACE_MANIFEST = path.resolve(__dirname, '..', '..', '..', '..', 'Cargo.toml');

/**
 * The command that runs `eddo` (its arguments follow): `EDDO_CLI` if set (a built binary); else,
 * unless a workspace is named, the checker this package carries (eddo's CLI as WebAssembly, run
 * by Node.js); else `cargo run` of the workspace's `eddo` binary, which builds it on first use.
 */
function eddoCommand(manifestPath?: string): string[] {
  const cli = process.env.EDDO_CLI;
  if (cli) {
    return [cli];
  }
  if (manifestPath === undefined && hasPackagedChecker()) {
    return packagedCheckerCommand();
  }
  return ['cargo', 'run', '--quiet', '--locked', '--manifest-path', manifestPath ?? WORKSPACE_MANIFEST, '-p', 'eddo-cli', '--bin', 'eddo', '--'];
}

const checked = new Map<string, CheckedPolicy>();

/**
 * Reads and checks the policy at `file` with eddo's parser. Throws an Error whose message is
 * eddo's own (`FILE:LINE:COLUMN: services.x.gate...: ...`, every mistake) when the file is missing or not a valid
 * policy. Each file is read once per synth.
 */
function checkPolicy(file: string, command: string[] = eddoCommand()): CheckedPolicy {
  const abs = path.resolve(file);
  let text: string;
  try {
    text = readFileSync(abs, 'utf-8');
  } catch (e) {
    throw new Error(`${abs}: ${(e as Error).message}`);
  }
  const key = `${command.join(' ')}\n${abs}\n${text}`;
  const known = checked.get(key);
  if (known) {
    return known;
  }
  const [program, ...args] = command;
  const run = spawnSync(program, [...args, 'policy', 'params', '--json', abs], { encoding: 'utf-8' });
  if (run.error) {
    throw new Error(`could not run ${command.join(' ')} to check the policy (a package without its checker: build the workspace, or set EDDO_CLI): ${run.error.message}`);
  }
  if (run.status !== 0) {
    throw new Error(run.stderr.trim() || `${command.join(' ')} exited with status ${run.status}`);
  }
  const raw = JSON.parse(run.stdout) as Record<string, unknown>;
  const list = (name: string): string[] => {
    const v = raw[name];
    if (!Array.isArray(v) || !v.every((i) => typeof i === 'string')) {
      throw new Error(`eddo policy params --json printed no ${name}: is the eddo binary older than this construct?`);
    }
    return v as string[];
  };
  const roles = (v: unknown): Record<string, string> => {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) {
      throw new Error('eddo policy params --json printed no ProjectRoles: is the eddo binary older than this construct?');
    }
    return v as Record<string, string>;
  };
  const policy: CheckedPolicy = {
    file: abs,
    text,
    lists: {
      repositories: list('TrackedRepositories'),
      owners: list('TrackedOwners'),
      signalSources: list('SignalSources'),
      buildProjects: list('BuildProjects'),
      sastProjects: list('SastProjects'),
      branches: list('Branches'),
      projectRoles: roles(raw.ProjectRoles),
    },
  };
  checked.set(key, policy);
  return policy;
}

/** eddo's policy at synth: read and checked by eddo's own parser. */
export class EddoPolicy {
  /**
   * Reads and checks the policy at `file` with eddo's parser. Throws an Error whose message is
   * eddo's own (`FILE:LINE:COLUMN: services.x.gate...: ...`, every mistake) when the file is
   * missing or not a valid policy. Each file is read once per synth.
   *
   * @param file the policy file (YAML)
   * @param command the command that runs eddo's CLI (its arguments follow); default `EddoPolicy.command()`
   */
  public static check(file: string, command?: string[]): CheckedPolicy {
    return checkPolicy(file, command ?? eddoCommand());
  }

  /**
   * The command that runs `eddo` (its arguments follow): `EDDO_CLI` if set (a built binary);
   * else, unless `manifestPath` is given, the checker this package carries (eddo's CLI compiled
   * to WebAssembly, run by Node.js: no cargo needed); else `cargo run` of the workspace's `eddo`.
   *
   * @param manifestPath a workspace's Cargo.toml, to check with its own `eddo`
   */
  public static command(manifestPath?: string): string[] {
    return eddoCommand(manifestPath);
  }

  private constructor() {}
}
