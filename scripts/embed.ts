// An esbuild plugin that lets the bundle carry every dependency inside it, with nothing read from
// beside it at run time: the npm package then installs as one package, and the single executable
// (scripts/sea.ts) needs no files at all. Each rewrite names the exact text it replaces and fails
// the build when that text is gone, so a dependency upgrade that moves it is caught here, not by a
// user.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { Plugin } from 'esbuild';

const requireHere = createRequire(import.meta.url);

function replaceOnce(text: string, from: string | RegExp, to: string, file: string): string {
  const found = typeof from === 'string' ? text.includes(from) : from.test(text);
  if (!found) throw new Error(`scripts/embed.ts: ${file} no longer contains ${String(from)}; update the rewrite for this version`);
  return text.replace(from, () => to);
}

/** etcd3 parses its .proto files from beside its own module when first loaded: parse them now, keep the JSON. */
function etcdProtoJson(): string {
  const etcdDir = dirname(requireHere.resolve('etcd3/package.json'));
  const protobuf = createRequire(requireHere.resolve('@grpc/proto-loader'))('protobufjs') as typeof import('protobufjs');
  // keepCase at parse time, as etcd3's own loadSync options ask; the rest apply in fromJSON.
  const root = new protobuf.Root().loadSync(join(etcdDir, 'proto', 'rpc.proto'), { keepCase: true });
  return JSON.stringify(root.toJSON());
}

/**
 * yoga-layout (ink's layout engine) compiles its wasm with a top-level await, which a CommonJS
 * bundle cannot hold. The wasm is small: compile it synchronously through emscripten's
 * instantiateWasm hook, which fills in the module before the loader returns.
 */
function yogaIndex(wasmBase64: string): string {
  return `import loadYoga from '../binaries/yoga-wasm-base64-esm.js';
import wrapAssembly from './wrapAssembly.js';
const wasm = Buffer.from(${JSON.stringify(wasmBase64)}, 'base64');
const mod = {
  instantiateWasm(imports, receive) {
    receive(new WebAssembly.Instance(new WebAssembly.Module(wasm), imports));
    return {};
  },
};
loadYoga(mod);
if (!mod.calledRun) throw new Error('yoga-layout did not start synchronously');
export default wrapAssembly(mod);
export * from './generated/YGEnums.js';
`;
}

/** Whether esbuild resolved a package to CommonJS code (the AWS SDK's dist-cjs, etcd3, react). */
function isCommonJs(file: string): boolean {
  if (file.endsWith('.cjs')) return true;
  if (!file.endsWith('.js')) return false;
  return !/^\s*(import|export)\b/m.test(readFileSync(file, 'utf8'));
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

export function embedPlugin(opts: { version: string }): Plugin {
  return {
    name: 'kport-embed',
    setup(build) {
      // Node gives `await import('cjs-package')` the package's named exports; a code-split esbuild
      // bundle gives only `default`, so `const { Etcd3 } = await import('etcd3')` would be undefined.
      // A dynamic import of a CommonJS package goes through a module that names its exports, read
      // here by loading the package as Node would.
      build.onResolve({ filter: /^[^./]/ }, async (args) => {
        if (args.kind !== 'dynamic-import' || args.pluginData === 'kport-cjs') return undefined;
        const resolved = await build.resolve(args.path, { kind: 'import-statement', resolveDir: args.resolveDir, pluginData: 'kport-cjs' });
        if (resolved.errors.length > 0 || resolved.external || !isCommonJs(resolved.path)) return undefined;
        return { path: args.path, namespace: 'kport-cjs', pluginData: { file: resolved.path, resolveDir: args.resolveDir } };
      });
      build.onLoad({ filter: /.*/, namespace: 'kport-cjs' }, (args) => {
        const { file, resolveDir } = args.pluginData as { file: string; resolveDir: string };
        const names = Object.keys(createRequire(file)(file) as object).filter((n) => IDENTIFIER.test(n) && n !== 'default');
        const spec = JSON.stringify(args.path);
        // require(), not import: Node's default export of a CommonJS module is module.exports, __esModule or not.
        return { contents: `const m = require(${spec});\nexport default m;\nexport const { ${names.join(', ')} } = m;\n`, loader: 'js', resolveDir };
      });
      // kport's own lazy `createRequire(import.meta.url)('x')` loads become plain requires so esbuild bundles x.
      build.onLoad({ filter: /[\\/]src[\\/].*\.ts$/ }, (args) => {
        let text = readFileSync(args.path, 'utf8');
        if (text.includes('createRequire(import.meta.url)(')) text = text.replaceAll('createRequire(import.meta.url)(', 'require(');
        return { contents: text, loader: 'ts' };
      });
      build.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        const contents = replaceOnce(
          text,
          '(0, proto_loader_1.loadSync)(`${__dirname}/../proto/rpc.proto`, {',
          `(0, proto_loader_1.fromJSON)(${etcdProtoJson()}, {`,
          args.path,
        );
        return { contents, loader: 'js' };
      });
      // ink's React devtools hook (DEV=true with react-devtools-core installed) is a top-level await; not shipped.
      build.onLoad({ filter: /[\\/]ink[\\/]build[\\/]reconciler\.js$/ }, (args) => {
        let text = readFileSync(args.path, 'utf8');
        text = replaceOnce(text, "await import('./devtools.js');", '', args.path);
        text = replaceOnce(text, 'const loaded = await loadPackageJson();', 'const loaded = {};', args.path);
        return { contents: text, loader: 'js' };
      });
      build.onLoad({ filter: /[\\/]yoga-layout[\\/]dist[\\/]binaries[\\/]yoga-wasm-base64-esm\.js$/ }, (args) => {
        const text = readFileSync(args.path, 'utf8');
        // The wasm lives once, in the index below; the loader's own copy (its async path) is dropped.
        return { contents: replaceOnce(text, /"data:application\/octet-stream;base64,[A-Za-z0-9+/=]+"/, '""', args.path), loader: 'js' };
      });
      build.onLoad({ filter: /[\\/]yoga-layout[\\/]dist[\\/]src[\\/]index\.js$/ }, (args) => {
        const loader = readFileSync(join(dirname(args.path), '..', 'binaries', 'yoga-wasm-base64-esm.js'), 'utf8');
        const wasm = /"data:application\/octet-stream;base64,([A-Za-z0-9+/=]+)"/.exec(loader)?.[1];
        if (!wasm) throw new Error(`scripts/embed.ts: no wasm found in yoga-layout's loader; update the rewrite for this version`);
        replaceOnce(readFileSync(args.path, 'utf8'), 'wrapAssembly(await loadYoga())', '', args.path);
        return { contents: yogaIndex(wasm), loader: 'js', resolveDir: dirname(args.path) };
      });
      build.initialOptions.define = { ...build.initialOptions.define, KPORT_VERSION: JSON.stringify(opts.version) };
    },
  };
}
