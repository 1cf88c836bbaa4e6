import { readFileSync } from 'node:fs';
import { serialize } from '../../core/output.ts';
import type { CommandDef } from '../command.ts';

/** From kport's package.json, the nearest one above this module (src/ in tests, the bundle in dist/). */
export function kportVersion(): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as { name?: string; version: string };
      if (pkg.name === 'kport') return pkg.version;
    } catch {}
    if (dir.pathname === '/') return 'unknown';
  }
}

export const version: CommandDef = {
  path: ['version'],
  summary: 'Print the kport version',
  examples: [
    'kport version',
    'kport version -o json',
  ],
  async run({ ctx, session }) {
    const info = { version: kportVersion(), node: process.versions.node, platform: `${process.platform}/${process.arch}` };
    const format = session.format;
    if (format !== 'text') return void ctx.stdout.write(serialize(info, format));
    ctx.stdout.write(`kport v${info.version} node v${info.node} ${info.platform}\n`);
  },
};
