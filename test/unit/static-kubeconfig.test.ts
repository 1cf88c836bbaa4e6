import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { stringify } from 'yaml';
import { UserError } from '../../src/core/errors.ts';
import { staticUpstream } from '../../src/kube/upstream.ts';
import { createCA } from '../../src/kube/pki.ts';
import { readStaticKubeconfig, staticKubeconfigProblem } from '../../src/resources/static-kubeconfig.ts';
import { tempDir } from '../peers/process.ts';

const b64 = (s: string) => Buffer.from(s).toString('base64');
const kubeconfig = (cluster: Record<string, unknown>, user: Record<string, unknown>) =>
  stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', ...cluster } }],
    users: [{ name: 'u', user }],
    contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
    'current-context': 'x',
  });
const cluster = (text: string) => ({ kind: 'kube_cluster' as const, version: 'v3' as const, metadata: { name: 'lab' }, spec: { kubeconfig: text } });

test('a stored kubeconfig that names a file is refused at create and never read where it is served: the server would read its own files for whoever wrote it', () => {
  const dir = tempDir('static-files');
  const secret = join(dir, 'secret');
  writeFileSync(secret, 'the server-side secret\n');
  for (const [what, text] of [
    ['user.client-certificate, user.client-key', kubeconfig({}, { 'client-certificate': secret, 'client-key': '/etc/passwd' })],
    ['user.token-file', kubeconfig({}, { 'token-file': secret })],
    ['cluster.certificate-authority', kubeconfig({ 'certificate-authority': secret }, { token: 't' })],
    ['user.tokenFile', kubeconfig({}, { tokenFile: secret })],
  ] as const) {
    const problem = staticKubeconfigProblem(text);
    assert.match(problem ?? '', new RegExp(`names a file \\(${what.replace(/\./g, '\\.')}\\)`), what);
    assert.match(problem ?? '', /kubectl config view --raw --flatten --minify/);
    assert.throws(
      () => staticUpstream(cluster(text)),
      (err: unknown) =>
        err instanceof UserError && /^kube_cluster lab: its kubeconfig names a file/.test(err.message) && !err.message.includes('server-side secret'),
    );
  }
  // A Kubernetes agent's own kubeconfig_file, and a person's own proxy: their files are theirs to name.
  assert.equal(readStaticKubeconfig(kubeconfig({}, { 'token-file': secret }), undefined, { files: true }).user['token-file'], secret);
});

test('inline CA, client certificate or key that is no PEM is refused at create and at use, as one sentence, not a crash at the first connection', async () => {
  const ca = await createCA('static test CA');
  const leaf = await ca.issue({ commonName: 'u', usage: 'client' });
  const good = kubeconfig({ 'certificate-authority-data': b64(ca.cert) }, { 'client-certificate-data': b64(leaf.cert), 'client-key-data': b64(leaf.key) });
  assert.equal(staticKubeconfigProblem(good), undefined);
  for (const text of [
    kubeconfig({}, { 'client-certificate-data': b64('not a certificate'), 'client-key-data': b64(leaf.key) }),
    kubeconfig({}, { 'client-certificate-data': b64(leaf.cert), 'client-key-data': b64('root:x:0:0:root:/root:/bin/bash') }),
    kubeconfig({ 'certificate-authority-data': b64('garbage') }, { token: 't' }),
  ]) {
    assert.match(staticKubeconfigProblem(text) ?? '', /not a usable PEM certificate or key/);
    assert.throws(
      () => staticUpstream(cluster(text)),
      (err: unknown) => err instanceof UserError && /not a usable PEM/.test(err.message),
    );
  }
  assert.match(staticKubeconfigProblem(kubeconfig({}, { 'client-certificate-data': b64(leaf.cert) })) ?? '', /certificate without its key/);
});

test('entries the proxy would not act on (proxy-url, auth-provider, as and its kin) are refused, not sent without', () => {
  for (const [what, text] of [
    ['cluster.proxy-url', kubeconfig({ 'proxy-url': 'socks5://127.0.0.1:1080' }, { token: 't' })],
    ['user.auth-provider', kubeconfig({}, { 'auth-provider': { name: 'gcp', config: { 'cmd-path': '/usr/bin/id' } } })],
    ['user.as, user.as-groups', kubeconfig({}, { token: 't', as: 'admin', 'as-groups': ['system:masters'] })],
  ] as const) {
    assert.match(staticKubeconfigProblem(text) ?? '', new RegExp(`uses ${what.replace(/\./g, '\\.')}, which kport's proxy does not`), what);
  }
});
