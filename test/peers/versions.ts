import { homedir } from 'node:os';
import { join } from 'node:path';

/** One Kubernetes release for kube-apiserver and kubectl; the etcd it pairs with comes from its go.mod. */
export const KUBERNETES_VERSION = 'v1.34.4';
export const MOTO_VERSION = '5.2.5';
/** Older kubectl releases people still run (issue 13): each has its module under test/peers/kubectl/<version>/. */
export const OLD_KUBECTL_VERSIONS = ['v1.28.15', 'v1.32.13'] as const;
/** helm, built from test/peers/helm/go.mod: the release line on the same client-go minor (v0.34) as kubectl. */
export const HELM_VERSION = 'v3.19.5';

export function peersCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(env.XDG_CACHE_HOME || join(env.HOME || homedir(), '.cache'), 'kport-peers');
}

export function goBinDir(): string {
  return join(peersCacheDir(), `kubernetes-${KUBERNETES_VERSION}`);
}

export function motoVenvDir(): string {
  return join(peersCacheDir(), `moto-${MOTO_VERSION}`);
}

export const BINARIES = {
  kubeApiserver: () => join(goBinDir(), 'kube-apiserver'),
  kubectl: () => join(goBinDir(), 'kubectl'),
  etcd: () => join(goBinDir(), 'etcd'),
  motoServer: () => join(motoVenvDir(), 'bin', 'moto_server'),
  helm: () => join(peersCacheDir(), `helm-${HELM_VERSION}`, 'helm'),
  oldKubectl: (version: (typeof OLD_KUBECTL_VERSIONS)[number]) => join(peersCacheDir(), `kubectl-${version}`, 'kubectl'),
};
