// test/peers/provision.ts with a stand-in `go` on PATH that records each build: what is built in
// one invocation, that independent modules build at the same time, and that stamps skip a rerun.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { execa } from 'execa';
import { tempDir } from '../peers/process.ts';
import {
  debianArch,
  HAPROXY_DEBS,
  HAPROXY_VERSION,
  HELM_VERSION,
  KUBERNETES_VERSION,
  KWOK_STAGES,
  KWOK_VERSION,
  MOTO_VERSION,
  OLD_KUBECTL_VERSIONS,
} from '../peers/versions.ts';

const provision = fileURLToPath(new URL('../peers/provision.ts', import.meta.url));

// Records its arguments; a build waits (up to 30 s) until a second build has started, then writes
// each package's binary into the -o directory: builds run one after another fail. `go list -m`
// answers with a module directory holding stand-ins for kwok's Stage files.
const fakeGo = `#!/bin/sh
echo "$*" >> "$FAKE_GO_LOG"
[ "$1" = version ] && exit 0
[ "$1" = list ] && { echo "$FAKE_GO_MODDIR"; exit 0; }
shift
out=""; pkgs=""
while [ $# -gt 0 ]; do case "$1" in -o) out="$2"; shift 2;; -*) shift;; *) pkgs="$pkgs $1"; shift;; esac; done
touch "$FAKE_GO_LOG.started.$$"
i=0
while [ "$(ls "$FAKE_GO_LOG".started.* | wc -l)" -lt "$FAKE_GO_WAIT_FOR" ]; do
  i=$((i+1)); [ $i -gt 300 ] && { echo "no other build started" >&2; exit 1; }; sleep 0.1
done
for p in $pkgs; do echo built > "$out$(basename "$p")"; done
`;

test('provision: one go build for kube-apiserver, kubectl and etcd; modules build side by side; a rerun builds nothing', async () => {
  const dir = tempDir('provision');
  const bin = join(dir, 'bin');
  mkdirSync(bin);
  writeFileSync(join(bin, 'go'), fakeGo);
  chmodSync(join(bin, 'go'), 0o755);
  // moto's venv counts as installed: this test is about the Go builds.
  const cache = join(dir, 'cache');
  const moto = join(cache, 'kport-peers', `moto-${MOTO_VERSION}`);
  mkdirSync(join(moto, 'bin'), { recursive: true });
  writeFileSync(join(moto, 'bin', 'moto_server'), '');
  writeFileSync(join(moto, '.stamp'), MOTO_VERSION);
  // So does HAProxy (its stamp: the pinned .debs' hashes), which would otherwise be downloaded.
  const haproxy = join(cache, 'kport-peers', `haproxy-${HAPROXY_VERSION}`);
  mkdirSync(join(haproxy, 'usr', 'sbin'), { recursive: true });
  writeFileSync(join(haproxy, 'usr', 'sbin', 'haproxy'), '');
  writeFileSync(join(haproxy, '.stamp'), HAPROXY_DEBS.map((d) => d.sha256[debianArch()!]).join('\n'));
  const modDir = join(dir, 'kwok-module');
  for (const stage of KWOK_STAGES) {
    mkdirSync(join(modDir, dirname(stage)), { recursive: true });
    writeFileSync(join(modDir, stage), `stage ${basename(stage)}\n`);
  }
  const log = join(dir, 'go.log');
  const env = {
    PATH: `${bin}:${process.env.PATH}`,
    XDG_CACHE_HOME: cache,
    FAKE_GO_LOG: log,
    FAKE_GO_MODDIR: modDir,
    FAKE_GO_WAIT_FOR: availableParallelism() >= 2 ? '2' : '1',
    CI: 'true',
  };
  const first = await execa(process.execPath, [provision], { env, reject: false });
  assert.equal(first.exitCode, 0, String(first.stderr));
  assert.doesNotMatch(String(first.stderr), /HAProxy/, 'a provisioned HAProxy is not fetched again');

  const builds = readFileSync(log, 'utf8')
    .trim()
    .split('\n')
    .filter((l) => l.startsWith('build '));
  const main = builds.filter((b) => b.includes('k8s.io/kubernetes/cmd/kube-apiserver'));
  assert.equal(main.length, 1);
  assert.match(main[0]!, / \.\/etcd k8s\.io\/kubernetes\/cmd\/kube-apiserver k8s\.io\/kubernetes\/cmd\/kubectl$/, 'one invocation builds all three');
  assert.ok(
    builds.some((b) => b.endsWith(' helm.sh/helm/v3/cmd/helm')),
    'helm is built',
  );
  assert.ok(
    builds.some((b) => b.endsWith(' sigs.k8s.io/kwok/cmd/kwok')),
    'kwok is built',
  );
  assert.equal(builds.length, 3 + OLD_KUBECTL_VERSIONS.length, builds.join('\n'));
  const peers = join(cache, 'kport-peers');
  for (const path of [
    join(peers, `kubernetes-${KUBERNETES_VERSION}`, 'kube-apiserver'),
    join(peers, `kubernetes-${KUBERNETES_VERSION}`, 'kubectl'),
    join(peers, `kubernetes-${KUBERNETES_VERSION}`, 'etcd'),
    join(peers, `helm-${HELM_VERSION}`, 'helm'),
    join(peers, `kwok-${KWOK_VERSION}`, 'kwok'),
    ...OLD_KUBECTL_VERSIONS.map((v) => join(peers, `kubectl-${v}`, 'kubectl')),
  ]) {
    assert.equal(readFileSync(path, 'utf8'), 'built\n', path);
    assert.ok(!existsSync(join(path, '..', '.build')), 'the scratch directory is gone');
  }

  for (const stage of KWOK_STAGES) {
    assert.equal(
      readFileSync(join(peers, `kwok-${KWOK_VERSION}`, basename(stage)), 'utf8'),
      `stage ${basename(stage)}\n`,
      "kwok's Stages are copied from its module",
    );
  }

  const again = await execa(process.execPath, [provision], { env, reject: false });
  assert.equal(again.exitCode, 0, String(again.stderr));
  assert.equal(
    readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .filter((l) => l.startsWith('build ')).length,
    builds.length,
    'stamps skip every build',
  );
});
