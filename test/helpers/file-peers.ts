// Peers shared by the tests of one file: each test file runs in a process of its own, so a peer
// started here is the file's, started by the first test that asks for it and stopped after the
// file's last test. For tests whose writes to the peer do not collide (their own tags, names,
// bindings); a test that changes a peer's behaviour (moto's IAM enforcement, a reset) starts its own.
// A kube-apiserver takes 4-6 s to start on 2 loaded cores, moto about 1 s.
import { after } from 'node:test';
import { startKubeApiserver, type KubeApiserver } from '../peers/kube.ts';
import { startMoto, type Moto } from '../peers/moto.ts';

let moto: Promise<Moto> | undefined;
let apiserver: Promise<KubeApiserver> | undefined;

/** The file's moto, no IAM enforcement. */
export function fileMoto(): Promise<Moto> {
  moto ??= startMoto();
  return moto;
}

/** The file's kube-apiserver (RBAC, static tokens), without an audit log or kubelet client. */
export function fileApiserver(): Promise<KubeApiserver> {
  apiserver ??= startKubeApiserver();
  return apiserver;
}

// Registered when a test file imports this module, so on the file's root: after every test in it.
after(async () => {
  await Promise.all([
    moto?.then(
      (m) => m.stop(),
      () => undefined,
    ),
    apiserver?.then(
      (a) => a.stop(),
      () => undefined,
    ),
  ]);
});
