// Provisions the real test peers without root (docs/architecture.md §8): moto in a venv,
// kube-apiserver, kubectl (current and older releases), etcd, helm and kwok built with `go build`, and
// HAProxy unpacked from Debian's pinned packages, all
// cached under ${XDG_CACHE_HOME:-~/.cache}/kport-peers so a fresh clone reuses them. Idempotent.
//
// A first run is CPU-bound compiling Go. What is cut: kube-apiserver, kubectl and etcd come from
// one `go build` (one module graph: the packages they share are compiled once and the linker of one
// overlaps the compiling of the next); the other modules build at the same time when the machine
// has the cores (two at once from 2 cores up: a build leaves cores idle while it downloads modules
// and while its single-threaded linker runs); the venv installs meanwhile (it waits on the network).
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  BINARIES,
  debianArch,
  HAPROXY_DEBS,
  HAPROXY_SNAPSHOT,
  HAPROXY_VERSION,
  haproxyDir,
  haproxyLibDir,
  HELM_VERSION,
  KUBERNETES_VERSION,
  KWOK_STAGES,
  KWOK_VERSION,
  MOTO_VERSION,
  OLD_KUBECTL_VERSIONS,
  goBinDir,
  motoVenvDir,
  type DebianPackage,
} from './versions.ts';

const here = dirname(fileURLToPath(import.meta.url));
const strict = process.env.CI === 'true' || process.env.CI === '1';
const problems: string[] = [];
const started = Date.now();

function have(cmd: string, args: string[]): boolean {
  return spawnSync(cmd, args, { stdio: 'ignore' }).status === 0;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'inherit', 'inherit'], cwd: opts.cwd, env: { ...process.env, ...opts.env } });
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed with exit code ${code ?? signal}`))));
  });
}

async function timed(what: string, fn: () => Promise<void>): Promise<void> {
  const start = Date.now();
  process.stderr.write(`peers: ${what}...\n`);
  await fn();
  process.stderr.write(`peers: ${what} took ${((Date.now() - start) / 1000).toFixed(1)}s\n`);
}

/** At most `limit` of the tasks at once, in the order given (the longest first). */
async function pool(limit: number, tasks: Array<() => Promise<void>>): Promise<void> {
  const queue = [...tasks];
  const worker = async () => {
    for (let task = queue.shift(); task; task = queue.shift()) await task();
  };
  await Promise.all(Array.from({ length: Math.min(limit, queue.length) }, worker));
}

interface GoBuild {
  what: string;
  /** The module's directory under test/peers/; its go.mod, go.sum and `sources` make the stamp. */
  dir: string;
  sources?: string[];
  /** Main packages, each built to its own name in `outDir`. */
  packages: string[];
  outDir: string;
  /** The binaries the tests run; a build is skipped when all exist under a matching stamp. */
  outputs: string[];
  /** Files of a dependency's module copied next to the binaries (kwok's Stages, which its binary does not embed). */
  moduleFiles?: { module: string; paths: string[] };
}

/** One `go build` of every package of a module into a scratch directory, then moved into place. */
async function goBuild(b: GoBuild): Promise<void> {
  const stamp = createHash('sha256')
    .update(['go.mod', 'go.sum', ...(b.sources ?? [])].map((f) => readFileSync(join(here, b.dir, f), 'utf8')).join('\0'))
    .digest('hex');
  const stampFile = join(b.outDir, '.stamp');
  if (b.outputs.every(existsSync) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return;
  const scratch = join(b.outDir, '.build');
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  await timed(`go build of ${b.what}`, () =>
    run('go', ['build', '-trimpath', '-ldflags=-s -w', '-o', `${scratch}/`, ...b.packages], {
      cwd: join(here, b.dir),
      env: { CGO_ENABLED: '0', GOFLAGS: '-mod=mod' },
    }),
  );
  if (b.moduleFiles) {
    const listed = spawnSync('go', ['list', '-m', '-f', '{{.Dir}}', b.moduleFiles.module], {
      cwd: join(here, b.dir),
      encoding: 'utf8',
      env: { ...process.env, GOFLAGS: '-mod=mod' },
    });
    if (listed.status !== 0) throw new Error(`go list -m ${b.moduleFiles.module} failed: ${listed.stderr}`);
    for (const path of b.moduleFiles.paths) copyFileSync(join(listed.stdout.trim(), path), join(scratch, basename(path)));
  }
  for (const out of b.outputs) renameSync(join(scratch, basename(out)), out);
  rmSync(scratch, { recursive: true, force: true });
  writeFileSync(stampFile, stamp);
}

const goBuilds: GoBuild[] = [
  {
    what: `kube-apiserver, kubectl and etcd for Kubernetes ${KUBERNETES_VERSION}`,
    dir: 'go',
    sources: ['etcd/main.go'],
    packages: ['./etcd', 'k8s.io/kubernetes/cmd/kube-apiserver', 'k8s.io/kubernetes/cmd/kubectl'],
    outDir: goBinDir(),
    outputs: [BINARIES.etcd(), BINARIES.kubeApiserver(), BINARIES.kubectl()],
  },
  ...OLD_KUBECTL_VERSIONS.map((version) => ({
    what: `kubectl ${version}`,
    dir: join('kubectl', version),
    packages: ['k8s.io/kubernetes/cmd/kubectl'],
    outDir: dirname(BINARIES.oldKubectl(version)),
    outputs: [BINARIES.oldKubectl(version)],
  })),
  { what: `helm ${HELM_VERSION}`, dir: 'helm', packages: ['helm.sh/helm/v3/cmd/helm'], outDir: dirname(BINARIES.helm()), outputs: [BINARIES.helm()] },
  {
    what: `kwok ${KWOK_VERSION}`,
    dir: 'kwok',
    packages: ['sigs.k8s.io/kwok/cmd/kwok'],
    outDir: dirname(BINARIES.kwok()),
    outputs: [BINARIES.kwok(), ...BINARIES.kwokStages()],
    moduleFiles: { module: 'sigs.k8s.io/kwok', paths: KWOK_STAGES },
  },
];

async function provisionGo(): Promise<void> {
  if (!have('go', ['version'])) {
    problems.push('go is missing: install Go 1.24 or newer (https://go.dev/dl/) to build kube-apiserver, kubectl, etcd, helm and kwok');
    return;
  }
  for (const b of goBuilds) mkdirSync(b.outDir, { recursive: true });
  const jobs = availableParallelism() >= 2 ? Math.max(2, Math.floor(availableParallelism() / 2)) : 1;
  await pool(
    jobs,
    goBuilds.map((b) => () => goBuild(b).catch((err: Error) => void problems.push(err.message))),
  );
}

async function provisionMoto(): Promise<void> {
  const stampFile = join(motoVenvDir(), '.stamp');
  if (existsSync(BINARIES.motoServer()) && existsSync(stampFile)) return;
  if (!have('python3', ['-c', 'import venv, ensurepip'])) {
    problems.push('python3 with venv is missing: install Python 3.9+ (Debian: apt install python3-venv) to run moto');
    return;
  }
  rmSync(motoVenvDir(), { recursive: true, force: true });
  await timed(`moto[server]==${MOTO_VERSION} into a venv`, async () => {
    await run('python3', ['-m', 'venv', motoVenvDir()]);
    await run(join(motoVenvDir(), 'bin', 'pip'), ['install', '--quiet', '--disable-pip-version-check', `moto[server]==${MOTO_VERSION}`]);
  });
  writeFileSync(stampFile, MOTO_VERSION);
}

/** One pinned .deb: from Debian's pool, else where it goes after a point release, else snapshot.debian.org; never unchecked. */
async function fetchDeb(deb: DebianPackage, arch: 'amd64' | 'arm64'): Promise<Buffer> {
  const path = deb.pool.replace('ARCH', arch);
  const urls = [
    `https://deb.debian.org/${deb.archive}/${path}`,
    ...(deb.archive === 'debian-security' ? [`https://deb.debian.org/debian/${path.replace('pool/updates/', 'pool/')}`] : []),
    `https://snapshot.debian.org/archive/${deb.archive}/${HAPROXY_SNAPSHOT}/${path}`,
  ];
  const failed: string[] = [];
  for (const url of urls) {
    try {
      const res = await fetch(url, { signal: AbortSignal.timeout(120_000) });
      if (!res.ok) {
        failed.push(`${url}: HTTP ${res.status}`);
        continue;
      }
      const body = Buffer.from(await res.arrayBuffer());
      const sum = createHash('sha256').update(body).digest('hex');
      if (sum === deb.sha256[arch]) return body;
      failed.push(`${url}: SHA256 ${sum}, not the pinned ${deb.sha256[arch]}`);
    } catch (err) {
      failed.push(`${url}: ${(err as Error).message}`);
    }
  }
  throw new Error(`could not fetch ${basename(path)} (pinned in test/peers/versions.ts): ${failed.join('; ')}`);
}

/** HAProxy and the libraries it may lack, unpacked without root into the cache; run with LD_LIBRARY_PATH (test/peers/haproxy.ts). */
async function provisionHaproxy(): Promise<void> {
  const arch = debianArch();
  if (!arch) {
    problems.push(`HAProxy is pinned for amd64 and arm64 (test/peers/versions.ts), not ${process.arch}: add this architecture's .deb hashes there`);
    return;
  }
  const stamp = HAPROXY_DEBS.map((d) => d.sha256[arch]).join('\n');
  const stampFile = join(haproxyDir(), '.stamp');
  if (existsSync(BINARIES.haproxy()) && existsSync(stampFile) && readFileSync(stampFile, 'utf8') === stamp) return;
  if (!have('dpkg-deb', ['--version'])) {
    problems.push('dpkg-deb is missing: install dpkg (on Debian and Ubuntu it is always there) to unpack HAProxy from its Debian package');
    return;
  }
  // Unpacked beside the cache entry and moved into place whole: an interrupted run leaves no half entry.
  const scratch = `${haproxyDir()}.build`;
  rmSync(scratch, { recursive: true, force: true });
  mkdirSync(scratch, { recursive: true });
  try {
    await unpackHaproxy(scratch, arch);
    rmSync(haproxyDir(), { recursive: true, force: true });
    renameSync(scratch, haproxyDir());
    writeFileSync(stampFile, stamp);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

/** The pinned .debs unpacked into `scratch`, and the binary run there once. */
async function unpackHaproxy(scratch: string, arch: 'amd64' | 'arm64'): Promise<void> {
  await timed(`HAProxy ${HAPROXY_VERSION} from Debian's packages`, async () => {
    const debs = await Promise.all(HAPROXY_DEBS.map((d) => fetchDeb(d, arch)));
    for (const [i, body] of debs.entries()) {
      const file = join(scratch, basename(HAPROXY_DEBS[i]!.pool.replace('ARCH', arch)));
      writeFileSync(file, body);
      await run('dpkg-deb', ['-x', file, scratch]);
      rmSync(file);
    }
  });
  // It runs here, with only the libraries unpacked beside it added: a library still missing is named now, not in a test.
  const binary = join(scratch, 'usr', 'sbin', 'haproxy');
  const version = spawnSync(binary, ['-v'], { encoding: 'utf8', env: { ...process.env, LD_LIBRARY_PATH: haproxyLibDir(scratch) } });
  if (!String(version.stdout).includes(`HAProxy version ${HAPROXY_VERSION}`)) {
    throw new Error(`the unpacked HAProxy does not run on this machine: ${version.stderr || version.error?.message || version.stdout}`);
  }
}

await Promise.all([provisionGo, provisionMoto, provisionHaproxy].map((step) => step().catch((err: Error) => void problems.push(err.message))));
if (Date.now() - started > 5_000) process.stderr.write(`peers: provisioned in ${((Date.now() - started) / 1000).toFixed(1)}s\n`);

if (problems.length > 0) {
  for (const p of problems) process.stderr.write(`peers: ${p}\n`);
  if (strict) {
    process.stderr.write('peers: CI=true and a test peer could not be provisioned; failing the run.\n');
    process.exit(1);
  }
  process.stderr.write('peers: the tests that need these peers will be skipped and say why.\n');
}
