'use strict';
// The single executable's main script (scripts/sea.ts). kport's bundle lives in the executable as
// assets, one per chunk, each a CommonJS function; this loads a chunk the first time it is required,
// so a command compiles only the code it runs, as `node bin/kport.js` does with its ES module chunks.
// Each chunk's V8 code cache, made at build time for this platform, is an asset beside it.
const { getAsset, getAssetKeys } = require('node:sea');
const { posix } = require('node:path');
const { pathToFileURL } = require('node:url');
const { Script } = require('node:vm');

const metaUrl = pathToFileURL(process.execPath).href;
const assets = new Set(getAssetKeys());
const loaded = new Map();
const nodeRequire = require;

function load(name) {
  const known = loaded.get(name);
  if (known) return known.exports;
  if (!assets.has(name)) throw new Error(`kport: the executable has no ${name}; rebuild it`);
  const module = { exports: {} };
  loaded.set(name, module);
  const cachedData = assets.has(`${name}.cache`) ? Buffer.from(getAsset(`${name}.cache`)) : undefined;
  // One line of wrapper, so stack traces keep the chunk's line numbers.
  const source = `(function (exports, require, module, __kportMetaUrl) {${getAsset(name, 'utf8')}\n})`;
  const script = new Script(source, { filename: `kport/${name}`, cachedData });
  if (process.env.KPORT_SEA_DEBUG && script.cachedDataRejected !== false) process.stderr.write(`kport: no code cache for ${name}\n`);
  const dir = posix.dirname(name);
  const requireHere = (spec) => (spec.startsWith('.') ? load(posix.join(dir, spec)) : nodeRequire(spec));
  script.runInThisContext().call(module.exports, module.exports, requireHere, module, metaUrl);
  return module.exports;
}

load('main.js');
