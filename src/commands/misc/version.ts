import { readFileSync } from 'node:fs';
import { isSea } from 'node:sea';
import { serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

// Set by the bundler (scripts/embed.ts): the bundle and the single executable carry no package.json.
declare const KPORT_VERSION: string | undefined;

/** The build's version; from src (tests), kport's package.json, the nearest one above this module. */
export function kportVersion(): string {
  if (typeof KPORT_VERSION === 'string') return KPORT_VERSION;
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'kport') return pkg.version;
    } catch {}
    if (dir.pathname === '/') return 'unknown';
  }
}

/** `binary` inside the single executable (the Node inside it is fixed), else `node`. */
export function kportRuntime(): 'binary' | 'node' {
  return isSea() ? 'binary' : 'node';
}

export const version: CommandDef = {
  path: ['version'],
  summary: 'Print the kport version',
  examples: ['kport version', 'kport version -o json'],
  async run({ ctx, session }) {
    const info = { version: kportVersion(), runtime: kportRuntime(), node: process.versions.node, platform: `${process.platform}/${process.arch}` };
    const format = session.format;
    if (format !== 'text') return void ctx.stdout.write(serialize(info, format));
    const runtime = info.runtime === 'binary' ? `binary (node v${info.node})` : `node v${info.node}`;
    ctx.stdout.write(`kport v${info.version} ${runtime} ${info.platform}\n`);
  },
};
