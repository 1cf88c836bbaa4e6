// The layer check (docs/architecture.md §3): every relative import in src/ goes down the layer
// order or stays in its folder, and the folders' import graph has no cycle; file cycles are
// reported too. A folder named in NESTED has an order of its own for its subfolders, held to the
// same two rules. A small scanner rather than madge: madge 8 cannot be installed beside our
// TypeScript 7 (its typescript peer range stops at 5), and this needs only the import lines.
//
//   node scripts/layers.ts [src]    prints what it finds; exit 1 when anything is found
//
// test/unit/layers.test.ts runs it on src/, which must stay clean.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative, sep } from 'node:path';

/**
 * The layers, bottom first: a folder may import its own layer's and those below. `main` is
 * src/main.ts. Folders of one layer must still not import each other in a circle.
 */
export const LAYERS: readonly (readonly string[])[] = [
  ['core'],
  ['backend', 'pki', 'aws'],
  ['resources'],
  ['roles'],
  ['config', 'api'],
  ['tokens', 'people', 'kube', 'recordings'],
  ['rbac', 'discovery'],
  ['client'],
  ['join', 'reversetunnel'],
  ['server'],
  ['service'],
  ['ui', 'commands'],
  ['main'],
];

/**
 * Folders whose subfolders have layers of their own, bottom first, under the same rules: an import
 * between two subfolders goes down or stays in its layer, and they import each other in no circle.
 * A file directly in such a folder, or a subfolder the order does not name, counts as unnamed.
 * server/: who is calling and what a call may cost (call), the health, readiness and metrics the
 * diagnostics address serves (diag), what is recorded (events), the watch-fed caches (cache), who
 * may do what (auth), proxy peering between servers (peer), the Kubernetes proxy (kubeproxy), and
 * the listener and router that wire them all (api).
 */
export const NESTED: Readonly<Record<string, readonly (readonly string[])[]>> = {
  server: [['call', 'diag'], ['events'], ['cache'], ['auth'], ['peer'], ['kubeproxy'], ['api']],
};

export interface Edge {
  /** Importing file, relative to the root scanned (`kube/forwarder.ts`). */
  from: string;
  /** Imported file, likewise. */
  to: string;
  typeOnly: boolean;
}

export interface LayerReport {
  edges: Edge[];
  /** Imports from a lower layer up into a higher one, or into a folder the layers do not name (NESTED's subfolders too). */
  upward: Edge[];
  /** Strongly connected sets of folders (more than one folder), each sorted; a nested one names its subfolders `server/api`. */
  folderCycles: string[][];
  /** Strongly connected sets of files (more than one file), each sorted. */
  fileCycles: string[][];
}

const IMPORT = /(?:^|[\s;}])(?:import|export)\s+(type\s+)?(?:[^'";]*?\sfrom\s*)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

/** The relative imports of every .ts/.tsx file under `root`. */
export function scanImports(root: string): Edge[] {
  const edges: Edge[] = [];
  const walk = (dir: string) => {
    for (const name of readdirSync(dir).sort()) {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) walk(path);
      else if (/\.tsx?$/.test(name)) {
        // Comments may quote an import; the scan reads code.
        const text = readFileSync(path, 'utf8')
          .replace(/\/\*[\s\S]*?\*\//g, '')
          .replace(/^\s*\/\/.*$/gm, '');
        for (const m of text.matchAll(IMPORT)) {
          const spec = m[2] ?? m[3]!;
          const to = relative(root, normalize(join(dirname(path), spec)))
            .split(sep)
            .join('/');
          edges.push({ from: relative(root, path).split(sep).join('/'), to, typeOnly: m[1] !== undefined });
        }
      }
    }
  };
  walk(root);
  return edges;
}

export function folderOf(file: string): string {
  return file.includes('/') ? file.slice(0, file.indexOf('/')) : file.replace(/\.tsx?$/, '');
}

/** The folder a file is in for the layer check: its subfolder (`server/api`) inside a folder NESTED orders. */
export function unitOf(file: string, nested: typeof NESTED = NESTED): string {
  const folder = folderOf(file);
  return Object.hasOwn(nested, folder) ? `${folder}/${folderOf(file.slice(folder.length + 1))}` : folder;
}

export function rankOf(folder: string, layers: typeof LAYERS = LAYERS): number | undefined {
  const i = layers.findIndex((layer) => layer.includes(folder));
  return i < 0 ? undefined : i;
}

export function checkLayers(edges: readonly Edge[], layers: typeof LAYERS = LAYERS, nested: typeof NESTED = NESTED): LayerReport {
  const top = checkOrder(edges, layers, folderOf);
  const upward = [...top.upward];
  const folderCycles = [...top.folderCycles];
  // Inside a nested folder, the same check among its subfolders, by its own order.
  for (const [folder, order] of Object.entries(nested)) {
    const prefix = `${folder}/`;
    const inside = edges.filter((e) => e.from.startsWith(prefix) && e.to.startsWith(prefix));
    const found = checkOrder(inside, order, (file) => folderOf(file.slice(prefix.length)));
    upward.push(...found.upward);
    folderCycles.push(...found.folderCycles.map((c) => c.map((f) => prefix + f)));
  }
  const fileCycles = cycles(edges.map((e) => [e.from, e.to] as const));
  return { edges: [...edges], upward, folderCycles: folderCycles.sort((x, y) => x[0]!.localeCompare(y[0]!)), fileCycles };
}

/** Upward imports and folder cycles among the folders `unit` puts `edges`' files in, by `layers`. */
function checkOrder(edges: readonly Edge[], layers: typeof LAYERS, unit: (file: string) => string): Pick<LayerReport, 'upward' | 'folderCycles'> {
  const upward = edges.filter((e) => {
    const a = unit(e.from);
    const b = unit(e.to);
    if (a === b) return false;
    const ra = rankOf(a, layers);
    const rb = rankOf(b, layers);
    return ra === undefined || rb === undefined || rb > ra;
  });
  const folderCycles = cycles(edges.map((e) => [unit(e.from), unit(e.to)] as const).filter(([a, b]) => a !== b));
  return { upward, folderCycles };
}

/** Tarjan's strongly connected components of more than one node. */
function cycles(pairs: readonly (readonly [string, string])[]): string[][] {
  const next = new Map<string, Set<string>>();
  for (const [a, b] of pairs) {
    if (!next.has(a)) next.set(a, new Set());
    if (!next.has(b)) next.set(b, new Set());
    next.get(a)!.add(b);
  }
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const found: string[][] = [];
  let counter = 0;
  const visit = (v: string) => {
    index.set(v, counter);
    low.set(v, counter++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v)!) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of [...next.keys()].sort()) if (!index.has(v)) visit(v);
  return found.sort((x, y) => x[0]!.localeCompare(y[0]!));
}

export function describe(report: LayerReport): string[] {
  const lines: string[] = [];
  for (const c of report.folderCycles) lines.push(`folder cycle: ${c.join(' <-> ')}`);
  for (const c of report.fileCycles) lines.push(`file cycle: ${c.join(' <-> ')}`);
  for (const e of report.upward) {
    // Between two top folders the top order speaks; inside one, its subfolders' (NESTED).
    const name = folderOf(e.from) === folderOf(e.to) ? unitOf : folderOf;
    lines.push(`upward import: ${e.from} -> ${e.to}${e.typeOnly ? ' (type)' : ''} (${name(e.from)} may not import ${name(e.to)})`);
  }
  return lines;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const root = process.argv[2] ?? 'src';
  const lines = describe(checkLayers(scanImports(root)));
  for (const line of lines) console.log(line);
  console.log(lines.length === 0 ? `${root}: no folder cycle, no file cycle, no upward import` : `${root}: ${lines.length} problem(s)`);
  process.exitCode = lines.length === 0 ? 0 : 1;
}
