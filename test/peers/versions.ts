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
  kwok: () => join(peersCacheDir(), `kwok-${KWOK_VERSION}`, 'kwok'),
  kwokStages: () => KWOK_STAGES.map((f) => join(peersCacheDir(), `kwok-${KWOK_VERSION}`, f.split('/').pop()!)),
  oldKubectl: (version: (typeof OLD_KUBECTL_VERSIONS)[number]) => join(peersCacheDir(), `kubectl-${version}`, 'kubectl'),
};
