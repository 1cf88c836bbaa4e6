import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { checkLayers, describe, folderOf, scanImports, type Edge } from '../../scripts/layers.ts';
import { tempDir } from '../peers/process.ts';

// docs/architecture.md §3: no folder cycle, no file cycle, no import from a lower layer up to a
// higher one (scripts/layers.ts). What is left lives in files other parts of issue 28 rewrite: this
// list must shrink to zero, and an entry that no longer happens fails the test, so it does.
const ALLOWED_UPWARD: readonly string[] = [
  // resources/: the kinds' registry reaches services; the role kind's schema lives in roles/.
  'resources/registry.ts -> people/locks.ts',
  'resources/registry.ts -> roles/load.ts',
  'resources/registry.ts -> discovery/heartbeat.ts',
  'resources/role.ts -> roles/role.ts',
  'resources/schemas.ts -> kube/static-kubeconfig.ts',
  'resources/schemas.ts -> roles/role.ts',
  // roles/: KubeAccess belongs with the RoleSet that computes it; config roles are typed by the config schema.
  'roles/evaluate.ts -> kube/access.ts',
  'roles/load.ts -> config/schema.ts',
];
const ALLOWED_FILE_CYCLES: readonly string[] = ['server/kube-agent-policy.ts <-> server/policy.ts'];

const pair = (e: Edge) => `${e.from} -> ${e.to}`;

test('src: no folder cycle, no file cycle, no upward import, but the allow-list (which must shrink to zero)', () => {
  const edges = scanImports('src');
  assert.ok(edges.length > 500, `the scan found ${edges.length} imports: it reads too little`);
  const allowed = new Set(ALLOWED_UPWARD);
  const report = checkLayers(edges.filter((e) => !allowed.has(pair(e))));
  const fileCycles = report.fileCycles.map((c) => c.join(' <-> ')).filter((c) => !ALLOWED_FILE_CYCLES.includes(c));
  assert.deepEqual(describe({ ...report, fileCycles: [] }), [], 'run `node scripts/layers.ts` for the list');
  assert.deepEqual(fileCycles, []);
  const full = checkLayers(edges);
  const stale = ALLOWED_UPWARD.filter((a) => !full.upward.some((e) => pair(e) === a));
  const staleCycles = ALLOWED_FILE_CYCLES.filter((a) => !full.fileCycles.some((c) => c.join(' <-> ') === a));
  assert.deepEqual([...stale, ...staleCycles], [], 'fixed: remove these from the allow-list');
});

test('the scanner finds an upward import, a folder cycle and a file cycle, from static, type-only, re-exported and dynamic imports', () => {
  const root = tempDir('layers');
  const write = (path: string, text: string) => {
    mkdirSync(join(root, path, '..'), { recursive: true });
    writeFileSync(join(root, path), text);
  };
  write('core/a.ts', "import type { B } from '../backend/b.ts';\nexport const a = 1;\n// import { x } from '../commands/x.ts';\n");
  write('backend/b.ts', "export { a } from '../core/a.ts';\nexport type B = 1;\n");
  write('kube/k.ts', "export const k = () => import('../tunnel/t.ts');\n");
  write('tunnel/t.ts', "import { k } from '../kube/k.ts';\nexport const t = k;\n");
  const report = checkLayers(scanImports(root));
  assert.deepEqual(report.upward.map((e) => `${pair(e)}${e.typeOnly ? ' (type)' : ''}`).sort(), ['core/a.ts -> backend/b.ts (type)', 'kube/k.ts -> tunnel/t.ts']);
  assert.deepEqual(report.folderCycles, [['backend', 'core'], ['kube', 'tunnel']]);
  assert.deepEqual(report.fileCycles, [['backend/b.ts', 'core/a.ts'], ['kube/k.ts', 'tunnel/t.ts']]);
  assert.equal(folderOf('main.ts'), 'main');
});
