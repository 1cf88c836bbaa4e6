// Provisions the real test peers without root (DESIGN.md §8): moto in a venv, and
// kube-apiserver, kubectl and etcd built with `go build`, all cached under
// ${XDG_CACHE_HOME:-~/.cache}/kport-peers so a fresh clone reuses them. Idempotent.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BINARIES, KUBERNETES_VERSION, MOTO_VERSION, OLD_KUBECTL_VERSIONS, goBinDir, motoVenvDir } from './versions.ts';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.env.CI === 'true' || process.env.CI === '1';
const problems: string[] = [];

function have(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): void {
  const res = spawnSync(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: opts.cwd, env: { ...process.env, ...opts.env } });
  if (res.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed with exit code ${res.status ?? res.signal}`);
}

function timed(what: string, fn: () => void): void {
  const start = Date.now();
  process.stderr.write(`peers: ${what}...\n`);
  fn();
  process.stderr.write(`peers: ${what} took ${((Date.now() - start) / 1000).toFixed(1)}s\n`);
}

function provisionGo(): void {
  const goDir = join(here, 'go');
  const stamp = createHash('sha256')
    .update(['go.mod', 'go.sum', 'etcd/main.go'].map((f) => readFileSync(join(goDir, f), 'utf8')).join('\0'))
    .digest('hex');
  const stampFile = join(goBinDir(), '.stamp');
  const built = [BINARIES.kubeApiserver(), BINARIES.kubectl(), BINARIES.etcd()].every(existsSync);
  if (built && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return;
  if (!have('go', ['version'])) {
    problems.push('go is missing: install Go 1.24 or newer (https://go.dev/dl/) to build kube-apiserver, kubectl and etcd');
    return;
  }
  mkdirSync(goBinDir(), { recursive: true });
  const targets: Array<[string, string]> = [
    [BINARIES.etcd(), './etcd'],
    [BINARIES.kubeApiserver(), 'k8s.io/kubernetes/cmd/kube-apiserver'],
    [BINARIES.kubectl(), 'k8s.io/kubernetes/cmd/kubectl'],
  ];
  timed(`go build of kube-apiserver, kubectl and etcd for Kubernetes ${KUBERNETES_VERSION} (first time: about 5 minutes)`, () => {
    for (const [out, pkg] of targets) {
      run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', `${out}.tmp`, pkg], { cwd: goDir, env: { CGO_ENABLED: '0', GOFLAGS: '-mod=mod' } });
      renameSync(`${out}.tmp`, out);
    }
  });
  writeFileSync(stampFile, stamp);
}

function provisionOldKubectl(): void {
  for (const version of OLD_KUBECTL_VERSIONS) {
    const dir = join(here, 'kubectl', version);
    const out = BINARIES.oldKubectl(version);
    const stamp = createHash('sha256').update(['go.mod', 'go.sum'].map((f) => readFileSync(join(dir, f), 'utf8')).join('\0')).digest('hex');
    const stampFile = join(dirname(out), '.stamp');
    if (existsSync(out) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) continue;
    if (!have('go', ['version'])) {
      problems.push(`go is missing: install Go 1.24 or newer to build kubectl ${version}`);
      return;
    }
    mkdirSync(dirname(out), { recursive: true });
    timed(`go build of kubectl ${version} (first time: about 2 minutes)`, () => {
      run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', `${out}.tmp`, 'k8s.io/kubernetes/cmd/kubectl'], { cwd: dir, env: { CGO_ENABLED: '0', GOFLAGS: '-mod=mod' } });
      renameSync(`${out}.tmp`, out);
    });
    writeFileSync(stampFile, stamp);
  }
}

function provisionMoto(): void {
  const stampFile = join(motoVenvDir(), '.stamp');
  if (existsSync(BINARIES.motoServer()) && existsSync(stampFile)) return;
  if (!have('python3', ['-c', 'import venv, ensurepip'])) {
    problems.push('python3 with venv is missing: install Python 3.9+ (Debian: apt install python3-venv) to run moto');
    return;
  }
  rmSync(motoVenvDir(), { recursive: true, force: true });
  timed(`moto[server]==${MOTO_VERSION} into a venv (first time: about 30 seconds)`, () => {
    run('python3', ['-m', 'venv', motoVenvDir()]);
    run(join(motoVenvDir(), 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `moto[server]==${MOTO_VERSION}`]);
  });
  writeFileSync(stampFile, MOTO_VERSION);
}

for (const step of [provisionGo, provisionOldKubectl, provisionMoto]) {
  try {
    step();
  } catch (err) {
    problems.push((err as Error).message);
  }
}

if (problems.length > 0) {
  for (const p of problems) process.stderr.write(`peers: ${p}\n`);
  if (strict) {
    process.stderr.write('peers: CI=true and a test peer could not be provisioned; failing the run.\n');
    process.exit(1);
  }
  process.stderr.write('peers: the tests that need these peers will be skipped and say why.\n');
}
