// Which kport the end-to-end tests drive: the built CLI under this Node (bin/kport.js) or the single
// executable (scripts/sea.ts), built here when its inputs changed since the last build (about 15 s,
// else nothing). A test file that takes a Cli runs the same assertions against each.
import { fileURLToPath } from 'node:url';
import { execa, type Options } from 'execa';

export const KPORT_BIN = fileURLToPath(new URL('../../bin/kport.js', import.meta.url));

export interface Cli {
  name: 'node' | 'binary';
  file: string;
  prefix: string[];
}

export const NODE_CLI: Cli = { name: 'node', file: process.execPath, prefix: [KPORT_BIN] };

let binary: Promise<Cli> | undefined;

/**
 * The single executable for this machine, built first if missing or stale. KPORT_TEST_BINARY names
 * another one to drive instead, such as a wrapper that runs the arm64 build under qemu-user.
 */
export function binaryCli(): Promise<Cli> {
  const given = process.env.KPORT_TEST_BINARY;
  binary ??= given
    ? Promise.resolve({ name: 'binary', file: given, prefix: [] })
    : import('../../scripts/sea.ts').then(async ({ buildSea }) => ({ name: 'binary', file: await buildSea(process.arch, { ifChanged: true }), prefix: [] }));
  return binary;
}

export function cliNamed(name: Cli['name']): Promise<Cli> {
  return name === 'binary' ? binaryCli() : Promise.resolve(NODE_CLI);
}

/** kport's args run by `cli`, as execa runs a command. */
export function runCli<O extends Options>(cli: Cli, args: string[], opts: O) {
  return execa(cli.file, [...cli.prefix, ...args], opts);
}
