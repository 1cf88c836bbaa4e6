import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkLayers, describe, folderOf, scanImports, type Edge } from '../../scripts/layers.ts';
import { tempDir } from '../peers/process.ts';

// docs/architecture.md §3 (scripts/layers.ts): every relative import in src/ goes down the layer
// order or stays in its folder; no folder cycle, no file cycle.
const pair = (e: Edge) => `${e.from} -> ${e.to}`;

test('src: no folder cycle, no file cycle, no upward import', () => {
  const edges = scanImports('src');
  assert.ok(edges.length > 500, `the scan found ${edges.length} imports: it reads too little`);
  assert.deepEqual(describe(checkLayers(edges)), [], 'run `node scripts/layers.ts` for the list');
});

test('the scanner finds an upward import, a folder cycle and a file cycle, from static, type-only, re-exported and dynamic imports', () => {
  const root = tempDir('layers');
  const write = (path: string, text: string) => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  write('core/a.ts', "import type { B } from '../backend/b.ts';\nexport const a = 1;\n// import { x } from '../commands/x.ts';\n");
  write('backend/b.ts', "export { a } from '../core/a.ts';\nexport type B = 1;\n");
  write('kube/k.ts', "export const k = () => import('../reversetunnel/t.ts');\n");
  write('reversetunnel/t.ts', "import { k } from '../kube/k.ts';\nexport const t = k;\n");
  const report = checkLayers(scanImports(root));
  assert.deepEqual(report.upward.map((e) => `${pair(e)}${e.typeOnly ? ' (type)' : ''}`).sort(), ['core/a.ts -> backend/b.ts (type)', 'kube/k.ts -> reversetunnel/t.ts']);
  assert.deepEqual(report.folderCycles, [['backend', 'core'], ['kube', 'reversetunnel']]);
  assert.deepEqual(report.fileCycles, [['backend/b.ts', 'core/a.ts'], ['kube/k.ts', 'reversetunnel/t.ts']]);
  assert.equal(folderOf('main.ts'), 'main');
});
