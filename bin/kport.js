#!/usr/bin/env node
// Thin launcher (STYLE.md 1): compile cache, a friendly Node version gate, then main().
import module from 'node:module';

module.enableCompileCache?.();

const [major, minor] = process.versions.node.split('.').map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  process.stderr.write(`kport needs Node.js 22.18 or newer; this is ${process.version}. Install a current Node.js LTS.\n`);
  process.exit(2);
}

const [kport, { launch }] = await Promise.all([import('../dist/main.js'), import('./launch.js')]);
process.exitCode = await launch(kport);
