import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkLayers, describe, folderOf, NESTED, rankOf, scanImports, type Edge } from '../../scripts/layers.ts';
import { tempDir } from '../peers/process.ts';

// docs/architecture.md §3 (scripts/layers.ts): every relative import in src/ goes down the layer
// order or stays in its folder; no folder cycle, no file cycle.
const pair = (e: Edge) => `${e.from} -> ${e.to}`;

test('src: no folder cycle, no file cycle, no upward import', () => {
  const edges = scanImports('src');
  assert.ok(edges.length > 500, `the scan found ${edges.length} imports: it reads too little`);
  assert.deepEqual(describe(checkLayers(edges)), [], 'run `node scripts/layers.ts` for the list');
  // A subfolder the nested order does not name would be checked only once a sibling imports it.
  for (const [folder, order] of Object.entries(NESTED)) {
    const subfolders = readdirSync(join('src', folder), { withFileTypes: true })
      .filter((d) => d.isDirectory())
      .map((d) => d.name);
    assert.deepEqual(
      subfolders.filter((name) => rankOf(name, order) === undefined),
      [],
      `every subfolder of src/${folder} has its place in NESTED.${folder}`,
    );
  }
});

test('the scanner finds an upward import, a folder cycle and a file cycle, from static, type-only, re-exported and dynamic imports, between top folders and between the subfolders of a nested one', () => {
  const root = tempDir('layers');
  const write = (path: string, text: string) => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  write('core/a.ts', "import type { B } from '../backend/b.ts';\nexport const a = 1;\n// import { x } from '../commands/x.ts';\n");
  write('backend/b.ts', "export { a } from '../core/a.ts';\nexport type B = 1;\n");
  write('kube/k.ts', "export const k = () => import('../reversetunnel/t.ts');\n");
  write('reversetunnel/t.ts', "import { k } from '../kube/k.ts';\nexport const t = k;\n");
  // Inside server/ (NESTED): api may import auth, events may not import kubeproxy, which imports it
  // back; a subfolder the order does not name (odd) and a file directly in server/ are unnamed.
  write('server/api/a.ts', "import { u } from '../auth/u.ts';\nimport { o } from '../odd/o.ts';\nexport const a = [u, o];\n");
  write('server/auth/u.ts', "import { LIMITS } from '../call/l.ts';\nexport const u = LIMITS;\n");
  write('server/call/l.ts', 'export const LIMITS = {};\n');
  write('server/events/e.ts', "import type { K } from '../kubeproxy/k.ts';\nexport type E = K;\n");
  write('server/kubeproxy/k.ts', "import type { E } from '../events/e.ts';\nimport { w } from '../wire.ts';\nexport type K = E | typeof w;\n");
  write('server/odd/o.ts', 'export const o = 1;\n');
  write('server/wire.ts', 'export const w = 1;\n');
  const report = checkLayers(scanImports(root));
  assert.deepEqual(report.upward.map((e) => `${pair(e)}${e.typeOnly ? ' (type)' : ''}`).sort(), [
    'core/a.ts -> backend/b.ts (type)',
    'kube/k.ts -> reversetunnel/t.ts',
    'server/api/a.ts -> server/odd/o.ts',
    'server/events/e.ts -> server/kubeproxy/k.ts (type)',
    'server/kubeproxy/k.ts -> server/wire.ts',
  ]);
  assert.deepEqual(report.folderCycles, [
    ['backend', 'core'],
    ['kube', 'reversetunnel'],
    ['server/events', 'server/kubeproxy'],
  ]);
  assert.deepEqual(report.fileCycles, [
    ['backend/b.ts', 'core/a.ts'],
    ['kube/k.ts', 'reversetunnel/t.ts'],
    ['server/events/e.ts', 'server/kubeproxy/k.ts'],
  ]);
  assert.ok(describe(report).includes('upward import: server/events/e.ts -> server/kubeproxy/k.ts (type) (server/events may not import server/kubeproxy)'));
  assert.ok(describe(report).includes('upward import: core/a.ts -> backend/b.ts (type) (core may not import backend)'));
  assert.equal(folderOf('main.ts'), 'main');
});
