import { homedir } from 'node:os';
import { join } from 'node:path';

/** One Kubernetes release for kube-apiserver and kubectl; the etcd it pairs with comes from its go.mod. */
export const KUBERNETES_VERSION = 'v1.34.4';
export const MOTO_VERSION = '5.2.5';
/** Older kubectl releases people still run (issue 13): each has its module under test/peers/kubectl/<version>/. */
export const OLD_KUBECTL_VERSIONS = ['v1.28.15', 'v1.32.13'] as const;
/** helm, built from test/peers/helm/go.mod: the release line on the same client-go minor (v0.34) as kubectl. */
export const HELM_VERSION = 'v3.19.5';
/** kwok, built from test/peers/kwok/go.mod: simulated node and pods whose exec, logs and port-forward run local commands. */
export const KWOK_VERSION = 'v0.8.0';
/** kwok's "fast" node and pod Stages (paths in its module), copied next to the binary: a node goes Ready and a pod Running at once. */
export const KWOK_STAGES = [
  'kustomize/stage/node/fast/node-initialize.yaml',
  'kustomize/stage/pod/fast/pod-ready.yaml',
  'kustomize/stage/pod/fast/pod-complete.yaml',
  'kustomize/stage/pod/fast/pod-delete.yaml',
];

/**
 * HAProxy, the load balancer in front of several servers: Debian bookworm's package (the security
 * update apt-get download fetched) and the libraries it links that a machine may lack (ldd of the
 * unpacked binary on this bookworm machine: liblua5.3.so.0 and libopentracing-c-wrapper.so.0, which
 * links libopentracing.so.1; libssl3, libpcre2 and libsystemd0 are on any Debian or Ubuntu). Each .deb
 * is fetched by its pool path and checked against its SHA256 before it is unpacked with dpkg -x.
 * Needs glibc 2.34+ (Debian 12, Ubuntu 22.04). To move the pin: `apt-get download haproxy` on a
 * bookworm machine (or the pool path on deb.debian.org), then `sha256sum` each file.
 */
export const HAPROXY_VERSION = '2.6.12-1+deb12u4';
/** A snapshot.debian.org time at which every pinned file was in its pool: the fallback once Debian's own pool has moved on. */
export const HAPROXY_SNAPSHOT = '20261207T000000Z';
export interface DebianPackage {
  /** `debian` or `debian-security`: the archive whose pool holds it. */
  archive: string;
  /** The pool path with `ARCH` for the architecture. */
  pool: string;
  sha256: Record<'amd64' | 'arm64', string>;
}
export const HAPROXY_DEBS: DebianPackage[] = [
  {
    archive: 'debian-security',
    pool: `pool/updates/main/h/haproxy/haproxy_${HAPROXY_VERSION}_ARCH.deb`,
    sha256: {
      amd64: '97ca097d12b43fc5cb1b17aa5e84957735ef312a2e02cf8a99512fa1abe8a955',
      arm64: '2ea3a5fe010fbe691b5af37d5eaed6c1294f38178f2ef3f82671557988946c58',
    },
  },
  {
    archive: 'debian',
    pool: 'pool/main/l/lua5.3/liblua5.3-0_5.3.6-2_ARCH.deb',
    sha256: {
      amd64: '576ad8ef2e9f6ad21f29f0c90dac17448deefee8f3912877c2a0911b77e5d3ca',
      arm64: 'a6ced38c031a049097fef0acdf57cac7d16d7f642006e8a2c17358bb47caa318',
    },
  },
  {
    archive: 'debian',
    pool: 'pool/main/o/opentracing-c-wrapper/libopentracing-c-wrapper0_1.1.3-3+b1_ARCH.deb',
    sha256: {
      amd64: '68013bf6296a776923622c871bed26bc7b6bfe5f84b0fa2707a06382d1db2692',
      arm64: '36751ed62c207843d9997e7984aec6cd7482fdd703f43849bc9e31e09c4c4d55',
    },
  },
  {
    archive: 'debian',
    pool: 'pool/main/o/opentracing-cpp/libopentracing1_1.6.0-4_ARCH.deb',
    sha256: {
      amd64: 'af62b62a99979253a79e3443f7dabe13f1f33bc2fc024f99039e3868a67f26f4',
      arm64: '5fe103e1d8ab56f8ee381aa3cca9ec0e40e61ea24f25d0ac9933cf9c5820b3a4',
    },
  },
];
/** The Debian architecture of this machine, when the HAProxy pin covers it. */
export function debianArch(): 'amd64' | 'arm64' | undefined {
  return process.arch === 'x64' ? 'amd64' : process.arch === 'arm64' ? 'arm64' : undefined;
}

export function peersCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'kport-peers');
}

export function goBinDir(): string {
  return join(peersCacheDir(), `kubernetes-${KUBERNETES_VERSION}`);
}

export function motoVenvDir(): string {
  return join(peersCacheDir(), `moto-${MOTO_VERSION}`);
}

export function haproxyDir(): string {
  return join(peersCacheDir(), `haproxy-${HAPROXY_VERSION}`);
}

/** Where the unpacked libraries are, for LD_LIBRARY_PATH. */
export function haproxyLibDir(root = haproxyDir()): string {
  return join(root, 'usr', 'lib', process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu');
}

export const BINARIES = {
  kubeApiserver: () => join(goBinDir(), 'kube-apiserver'),
  kubectl: () => join(goBinDir(), 'kubectl'),
  etcd: () => join(goBinDir(), 'etcd'),
  motoServer: () => join(motoVenvDir(), 'bin', 'moto_server'),
  helm: () => join(peersCacheDir(), `helm-${HELM_VERSION}`, 'helm'),
  kwok: () => join(peersCacheDir(), `kwok-${KWOK_VERSION}`, 'kwok'),
  kwokStages: () => KWOK_STAGES.map((f) => join(peersCacheDir(), `kwok-${KWOK_VERSION}`, f.split('/').pop()!)),
  haproxy: () => join(haproxyDir(), 'usr', 'sbin', 'haproxy'),
  oldKubectl: (version: (typeof OLD_KUBECTL_VERSIONS)[number]) => join(peersCacheDir(), `kubectl-${version}`, 'kubectl'),
};
