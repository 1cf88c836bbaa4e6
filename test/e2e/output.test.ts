// The built CLI's output surface (issues 18.5, 18.10, 19.2, 19.7, 19.8, 19.13): what reaches the
// terminal when agents write hostile text into the store, a reader that closes the pipe early, one
// format flag in three spellings, YAML a YAML 1.1 reader reads back, --no-color, help examples.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { before, describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { openBackend } from '../../src/backend/open.ts';
import { COMMANDS } from '../../src/commands/index.ts';
import { upsertResource } from '../../src/resources/store.ts';
import type { Resource } from '../../src/resources/resource.ts';
import { tempHome } from '../helpers/run.ts';

const bin = fileURLToPath(new URL('../../bin/kport.js', import.meta.url));

/** A window title, a bell, a screen clear, an 8-bit CSI, DEL, a right-to-left override, isolates, a line separator. */
const HOSTILE = 'x\u001b]0;pwned\u0007\u001b[2J\u009b31m\u007f\u202eevil\u2066\u2069\u200f\u061c\u2028\r\ny';
/** Raw in output, less the newlines and tabs output lays itself out with. */
const RAW = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

/** What YAML 1.1 readers (PyYAML, Ruby, Go yaml.v2) turn into booleans, dates, numbers and null when plain. */
const AMBIGUOUS: Record<string, string> = {
  no: 'yes',
  on: 'off',
  y: 'n',
  Y: 'N',
  date: '2024-01-01',
  octal: '0755',
  under: '1_000',
  sexagesimal: '1:20',
  tilde: '~',
  nul: 'null',
  float: '1e3',
  octal12: '0o17',
};

function setup() {
  const home = tempHome();
  const config = join(home, 'kport.yaml');
  writeFileSync(
    config,
    stringify({
      version: 'v3',
      teleport: { data_dir: join(home, 'data') },
      roles: [{ name: 'all', kubernetes_labels: { '*': '*' }, kubernetes_groups: ['g'] }],
      users: [{ name: 'alice', roles: ['all'] }],
      discovery_service: { enabled: 'yes', aws: [{ types: ['eks'], regions: ['us-east-1'], tags: { '*': '*' } }] },
    }),
  );
  const env = { HOME: home, PATH: process.env.PATH ?? '', KPORT_CONFIG: config, KUBECONFIG: join(home, 'kubeconfig') };
  const kport = (args: string[], extra: Record<string, string> = {}) =>
    execa(process.execPath, [bin, ...args], { cwd: home, env: { ...env, ...extra }, extendEnv: false, reject: false });
  return { home, env, kport };
}

/** Writes resources straight into the store, as a hostile agent's heartbeats would land there. */
async function store(home: string, resources: Resource[]): Promise<void> {
  const backend = await openBackend({ type: 'sqlite' } as never, join(home, 'data'));
  try {
    for (const r of resources) await upsertResource(backend, r);
  } finally {
    await backend.close();
  }
}

const now = new Date().toISOString();
const hostileResources: Resource[] = [
  {
    kind: 'discovery_service',
    version: 'v1',
    metadata: { name: 'host-1' },
    spec: {
      host_id: 'host-1-abcdef',
      hostname: HOSTILE,
      discovery_group: HOSTILE,
      state: HOSTILE,
      started: now,
      last_poll: now,
      clusters: { seen: 1, created: 0, updated: 0, deleted: 0 },
      errors: [{ scope: HOSTILE, error: HOSTILE, at: now }],
    },
  },
  {
    kind: 'agent',
    version: 'v1',
    metadata: { name: 'host-1' },
    spec: { host_id: 'host-1', hostname: HOSTILE, roles: ['discovery'], joined: now, token_name: HOSTILE, credential_hash: 'x', address: HOSTILE },
  },
  {
    kind: 'kube_server',
    version: 'v1',
    metadata: { name: 'host-1', expires: new Date(Date.now() + 3_600_000).toISOString() },
    spec: { host_id: 'host-1', hostname: HOSTILE, clusters: [HOSTILE] },
  },
  {
    kind: 'audit_event',
    version: 'v1',
    metadata: { name: `${now}-1` },
    spec: { time: now, type: 'agent.join', outcome: 'refused', host_id: HOSTILE, reason: HOSTILE, remote_addr: HOSTILE },
  },
  {
    kind: 'kube_cluster',
    version: 'v3',
    metadata: { name: 'prod-eks-us-east-1-222222222222', labels: { team: HOSTILE, 'kport.dev/origin': 'cloud', region: 'us-east-1', ...AMBIGUOUS } },
    spec: { aws: { name: 'prod', region: 'us-east-1', account_id: '222222222222', arn: 'arn:aws:eks:us-east-1:222222222222:cluster/prod' } },
  },
];

describe('output of the built CLI', { concurrency: false, timeout: 300_000 }, () => {
  const { home, kport } = setup();
  before(() => store(home, hostileResources));
  /** kport on a real terminal (stdout and stderr), from script(1); the terminal's own \r\n read as \n. */
  const onTerminal = async (args: string, env: Record<string, string> = {}) =>
    String(
      (
        await execa('script', ['-qec', `${process.execPath} ${bin} ${args}`, '/dev/null'], {
          cwd: home,
          env: { HOME: home, KPORT_CONFIG: join(home, 'kport.yaml'), ...env },
          extendEnv: false,
          reject: false,
        })
      ).stdout,
    ).replace(/\r\n/g, '\n');

  test('hostile text in heartbeats, joins, tags and argv reaches no stream raw, in any format', async () => {
    const commands = [
      ['get', 'discovery_service'],
      ['get', 'discovery_service', '-v'],
      ['agents', 'ls'],
      ['get', 'agent'],
      ['get', 'kube_server'],
      ['get', 'audit'],
      ['get', 'kube_cluster'],
      ['kube', 'ls', '--user', 'alice'],
      ['get', `kube_cluster/${HOSTILE}`],
      ['get', `kube_cluster/${HOSTILE}`, '--debug'],
      ['rm', `kube_cluster/${HOSTILE}`],
      ['agents', 'rm', HOSTILE],
      ['kube', 'login', HOSTILE, '--user', 'alice', '--', 'true'],
      [HOSTILE],
      ['get', 'kube_cluster', '--format', HOSTILE],
    ];
    for (const args of commands) {
      for (const format of [[], ['-o', 'json'], ['-o', 'yaml']]) {
        const out = await kport([...args, ...format]);
        const what = `kport ${args.join(' ')} ${format.join(' ')}`;
        assert.doesNotMatch(String(out.stdout), RAW, `${what}: stdout`);
        assert.doesNotMatch(String(out.stderr), RAW, `${what}: stderr`);
        assert.ok(String(out.stdout) + String(out.stderr), `${what} printed something`);
      }
    }
    // On a terminal too, where the tables are aligned and truncated.
    for (const args of ['get discovery_service -v', 'agents ls', 'get kube_cluster -v', 'kube ls --user alice -v']) {
      const out = await onTerminal(args);
      assert.match(out, /-{4}/, `${args} printed a table on a terminal`);
      assert.doesNotMatch(out, RAW, `${args} on a terminal`);
    }
    // The text is there, shown as escapes people can read.
    const table = String((await kport(['get', 'discovery_service'])).stdout);
    assert.ok(table.includes('x\\x1b]0;pwned\\x07\\x1b[2J\\x9b31m\\x7f\\u202eevil'), table);
    // Machine output reads back as the very same text.
    const json = JSON.parse(String((await kport(['get', 'discovery_service', '-o', 'json'])).stdout));
    assert.equal(json[0].spec.hostname, HOSTILE);
  });

  test('a reader that closes the pipe early ends the command quietly, exit 0 and no stack', async () => {
    for (const args of [['create', '--help'], ['--help'], ['get', 'discovery_service'], ['get', 'kube_cluster', '-o', 'yaml'], ['completion', 'bash']]) {
      const child = spawn(process.execPath, [bin, ...args], {
        cwd: home,
        env: { HOME: home, KPORT_CONFIG: join(home, 'kport.yaml') },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      // Closed before kport writes anything: its every write meets a closed pipe, as after `| head -1`.
      child.stdout.destroy();
      let stderr = '';
      child.stderr.on('data', (c) => (stderr += c));
      const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
      assert.equal(stderr, '', `kport ${args.join(' ')}`);
      assert.equal(code, 0, `kport ${args.join(' ')}`);
    }
  });

  test('-o, --output and --format are one flag: the same output, and the last one given wins', async () => {
    for (const spelling of [['-o', 'text'], ['-otext'], ['--output', 'text'], ['--output=text'], ['--format', 'text'], ['--format=TEXT']]) {
      const add = await kport(['tokens', 'add', '--type=discovery', ...spelling]);
      assert.equal(add.exitCode, 0, String(add.stderr));
      assert.match(String(add.stdout), /^[0-9a-f]{16}\.[0-9a-f]{32}$/, `tokens add ${spelling.join(' ')} prints only the secret`);
    }
    const yaml = String((await kport(['get', 'kube_cluster', '--format', 'yaml'])).stdout);
    for (const spelling of [['-o', 'yaml'], ['-oyaml'], ['--output=yaml'], ['--format', 'json', '-o', 'yaml']]) {
      assert.equal(String((await kport(['get', 'kube_cluster', ...spelling])).stdout), yaml, spelling.join(' '));
    }
    const last = String((await kport(['get', 'kube_cluster', '-o', 'yaml', '--format', 'json'])).stdout);
    assert.doesNotThrow(() => JSON.parse(last), last);
    for (const spelling of [['-o', 'xml'], ['--output=xml'], ['--format', 'xml']]) {
      const bad = await kport(['get', 'kube_cluster', ...spelling]);
      assert.equal(bad.exitCode, 2);
      assert.match(String(bad.stderr), /Unknown format "xml"/);
    }
    // Errors are JSON lines for -ojson as for --format=json.
    const error = await kport(['get', 'widget', '-ojson']);
    assert.equal(JSON.parse(String(error.stderr)).level, 'error');
  });

  test('-o yaml reads back unchanged with a YAML 1.1 reader (PyYAML)', async (t) => {
    const python = [join(homedir(), '.cache/kport-peers/moto-5.2.5/bin/python'), 'python3'].find((p) => {
      try {
        execFileSync(p, ['-c', 'import yaml'], { stdio: 'ignore' });
        return true;
      } catch {
        return false;
      }
    });
    if (!python) {
      if (process.env.CI) assert.fail('PyYAML is missing: node test/peers/provision.ts installs it with moto');
      return t.skip('no python with PyYAML');
    }
    const pyyaml = (text: string) =>
      JSON.parse(execFileSync(python, ['-c', 'import json, sys, yaml; print(json.dumps(yaml.safe_load(sys.stdin)))'], { input: text, encoding: 'utf8' }));
    for (const args of [
      ['get', 'kube_cluster'],
      ['kube', 'ls', '--user', 'alice'],
      ['get', 'discovery_service'],
    ]) {
      const yaml = await kport([...args, '-o', 'yaml']);
      assert.equal(yaml.exitCode, 0, String(yaml.stderr));
      assert.deepEqual(pyyaml(String(yaml.stdout)), JSON.parse(String((await kport([...args, '-o', 'json'])).stdout)), args.join(' '));
    }
    const policy = await kport(['discover', 'policy', '-o', 'yaml']);
    assert.equal(policy.exitCode, 0, String(policy.stderr));
    assert.equal(pyyaml(String(policy.stdout)).Version, '2012-10-17');
  });

  test('--no-color: no colour on a terminal, as with NO_COLOR', async () => {
    assert.match(await onTerminal('get widget'), /\u001b\[31mERROR:/, 'the check can fail: colour without the flag');
    assert.doesNotMatch(await onTerminal('get widget --no-color'), /\u001b\[/);
    assert.doesNotMatch(await onTerminal('--no-color get widget'), /\u001b\[/);
    assert.doesNotMatch(await onTerminal('get widget', { NO_COLOR: '1' }), /\u001b\[/);
  });

  test('kube ls: own labels before kport.dev/*, and Selected marks the context aws eks update-kubeconfig writes', async () => {
    const kubeconfig = join(home, 'eks-kubeconfig');
    writeFileSync(kubeconfig, 'apiVersion: v1\nkind: Config\ncurrent-context: arn:aws:eks:us-east-1:222222222222:cluster/prod\n');
    const ls = await kport(['kube', 'ls', '--user', 'alice'], { KUBECONFIG: kubeconfig });
    const [, row] = String(ls.stdout).split('\n');
    const [name, labels, selected] = row!.split('\t');
    assert.equal(name, 'prod-eks-us-east-1-222222222222');
    assert.equal(selected, '*');
    assert.match(labels!, /^date=.*,team=.*,kport\.dev\/origin=cloud$/);
    const json = JSON.parse(String((await kport(['kube', 'ls', '--user', 'alice', '-o', 'json'], { KUBECONFIG: kubeconfig })).stdout));
    assert.equal(json[0].selected, true);
    // kport's own context (kube login) marks it too; another context marks nothing.
    writeFileSync(kubeconfig, 'current-context: kport-prod-eks-us-east-1-222222222222\n');
    assert.equal(
      String((await kport(['kube', 'ls', '--user', 'alice'], { KUBECONFIG: kubeconfig })).stdout)
        .split('\n')[1]!
        .split('\t')[2],
      '*',
    );
    writeFileSync(kubeconfig, 'current-context: minikube\n');
    assert.equal(
      String((await kport(['kube', 'ls', '--user', 'alice'], { KUBECONFIG: kubeconfig })).stdout)
        .split('\n')[1]!
        .split('\t')[2],
      '',
    );
  });

  test('kube login and kube ls say the same of a user who is not defined', async () => {
    const ls = await kport(['kube', 'ls', '--user', 'nobody']);
    assert.match(String(ls.stderr), /your kport user "nobody" is not defined: add it under users:/);
    const login = await kport(['kube', 'login', 'prod-eks-us-east-1-222222222222', '--user', 'nobody', '--', 'true']);
    assert.equal(login.exitCode, 1);
    assert.match(String(login.stderr), /your kport user "nobody" is not defined: add it under users:/);
    assert.doesNotMatch(String(login.stderr), /has no roles/);
  });

  test('kport --help and every group --help end with examples', async () => {
    // Every first word the registry has (a group such as users, or a command such as login); a source folder (auth) is no command.
    const groups = ['', ...new Set(COMMANDS.map((c) => c.path[0]!))];
    for (const group of groups) {
      const help = await kport([...(group ? [group] : []), '--help']);
      assert.match(String(help.stdout), /\nExamples:\n {2}kport \S+/, `kport ${group} --help`);
    }
  });
});
