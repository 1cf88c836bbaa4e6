import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { loadConfig } from '../../src/config/load.ts';
import { testTimeouts } from '../../src/config/test-timeouts.ts';
import { UsageError } from '../../src/core/errors.ts';
import { tempHome } from '../helpers/run.ts';

const GUIDE = `version: v3
teleport:
  join_params:
    token_name: "/tmp/token"
    method: token
  proxy_server: teleport.example.com:443
auth_service:
  enabled: off
proxy_service:
  enabled: off
ssh_service:
  enabled: off
discovery_service:
  enabled: "yes"
  discovery_group: "aws-prod"
  aws:
   - types: ["eks"]
     regions: ["*"]
     tags:
       "env": "prod"
kubernetes_service:
  enabled: "yes"
  resources:
  - labels:
      "env": "prod"
`;

function withFile(name: string, text: string): { dir: string; path: string } {
  const dir = tempHome();
  const path = join(dir, name);
  writeFileSync(path, text);
  return { dir, path };
}

const load = (path: string, dir: string) => loadConfig({ file: path, cwd: dir, env: { HOME: dir } });

describe('config', () => {
  test("the guide's teleport.yaml loads unchanged, YAML 1.1 booleans meaning what they say", async () => {
    const { dir, path } = withFile('teleport.yaml', GUIDE);
    const config = await load(path, dir);
    assert.equal(config.discovery_service?.enabled, true);
    assert.equal(config.kubernetes_service?.enabled, true);
    assert.equal(config.auth_service?.enabled, false);
    assert.equal(config.discovery_service?.discovery_group, 'aws-prod');
    assert.equal(config.discovery_service?.poll_interval, 300_000);
    assert.deepEqual(config.discovery_service?.aws[0], { types: ['eks'], regions: ['*'], tags: { env: 'prod' } });
    assert.equal(config.teleport.join_params?.token_name, '/tmp/token');
    assert.deepEqual(config.teleport.storage, { type: 'sqlite' });
    assert.equal(config.dataDir, join(dir, '.local', 'share', 'kport'));
    assert.deepEqual(config.warnings, []);
  });

  test('every problem is reported at once, with key path and line', async () => {
    const { dir, path } = withFile(
      'kport.yaml',
      ['version: v3', 'discovery_service:', '  enabled: maybe', '  poll_intervall: 5m', '  aws:', '    - types: eks', '      regions: ["*"]', 'roles: []'].join(
        '\n',
      ),
    );
    await assert.rejects(load(path, dir), (err: Error) => {
      assert.match(err.message, /has 3 problems/);
      assert.match(err.message, /discovery_service\.enabled \(line 3\): expected a boolean \(yes\/no, on\/off, true\/false\), got "maybe"/);
      assert.match(err.message, /discovery_service\.poll_intervall \(line 4\): unknown key; did you mean "poll_interval"\?/);
      assert.match(err.message, /discovery_service\.aws\[0\]\.types \(line 6\): /);
      return true;
    });
  });

  test('bad durations, malformed YAML and enabled services kport does not run are refused', async () => {
    const bad = [
      ['discovery_service:\n  poll_interval: soon\n', /poll_interval \(line 2\): invalid duration "soon"/],
      ['teleport:\n  data_dir: [unclosed\n', /not valid YAML:\n {2}line \d+: Flow sequence/],
      ['ssh_service:\n  enabled: yes\n', /ssh_service\.enabled \(line 2\): kport does not run this Teleport service; set enabled: off/],
      ['- just\n- a list\n', /must be a YAML mapping/],
      ['teleport:\n  storage:\n    type: postgres\n', /teleport\.storage\.type \(line 3\)/],
    ] as const;
    for (const [text, pattern] of bad) {
      const { dir, path } = withFile('kport.yaml', text);
      await assert.rejects(load(path, dir), pattern, text);
    }
  });

  test('discovery matchers are validated as Teleport does, with key path and line', async () => {
    const head = 'discovery_service:\n  enabled: yes\n  aws:\n';
    const bad = [
      ['discovery_service:\n  enabled: yes\n  aws: []\n', /discovery_service\.aws \(line 3\): discovery service requires at least one aws matcher/],
      [`${head}    - types: []\n      regions: [us-east-1]\n`, /aws\[0\]\.types \(line 4\): discovery service requires at least one type/],
      [
        `${head}    - types: [ec2]\n      regions: [us-east-1]\n`,
        /aws\[0\]\.types\[0\] \(line 4\): discovery service type does not support "ec2" \(kport discovers only eks\)/,
      ],
      [
        `${head}    - types: [EKS]\n      regions: [us-east-1]\n`,
        /types\[0\] \(line 4\): discovery service type does not support "EKS" \(supported: eks; did you mean "eks"\?\)/,
      ],
      [`${head}    - types: [eksx]\n      regions: [us-east-1]\n`, /does not support "eksx".*did you mean "eks"/],
      [
        `${head}    - types: [eks]\n      regions: ["*", us-east-1]\n`,
        /aws\[0\]\.regions \(line 5\): when using "\*" as region, no other regions can be specified/,
      ],
      [
        `${head}    - types: [eks]\n      regions: [us-est-1]\n`,
        /aws\[0\]\.regions\[0\] \(line 5\): unknown AWS region "us-est-1"; did you mean "us-east-1"\?/,
      ],
      [`${head}    - types: [eks]\n      regions: [""]\n`, /regions\[0\] \(line 5\): a region cannot be empty/],
      [`${head}    - types: [eks]\n      regions: []\n`, /regions \(line 5\): at least one region is required/],
      [`${head}    - types: [eks]\n      regions: [us-east-1, cn-north-1]\n`, /regions of different AWS partitions \(aws, aws-cn\)/],
      [`${head}    - types: [eks]\n      tags: { env: "^(?!prod).*$" }\n`, /aws\[0\]\.tags \(line 5\): env: .* is not a regular expression RE2 accepts/],
      ['roles:\n  - name: r\n    kubernetes_labels: { env: "^(a)\\\\1$" }\n', /roles\[0\]\.kubernetes_labels \(line 3\): .*RE2/],
    ] as const;
    for (const [text, pattern] of bad) {
      const { dir, path } = withFile('kport.yaml', text);
      await assert.rejects(load(path, dir), pattern, text);
    }
    const { dir, path } = withFile('kport.yaml', `${head}    - types: [eks]\n      regions: [cn-north-1, cn-northwest-1]\n`);
    assert.deepEqual((await load(path, dir)).discovery_service?.aws[0]?.regions, ['cn-north-1', 'cn-northwest-1']);
  });

  test('kubernetes_service.resources[].tags is read as labels, with a warning naming the line', async () => {
    const { dir, path } = withFile('kport.yaml', 'kubernetes_service:\n  enabled: on\n  resources:\n    - tags: { env: prod }\n');
    const config = await load(path, dir);
    assert.deepEqual(config.kubernetes_service?.resources[0]?.labels, { env: 'prod' });
    assert.match(config.warnings[0] ?? '', /resources\[0\]\.tags \(line 4\) is read as labels/);
  });

  test('search order: kport.yaml in the working directory, then parents; KPORT_CONFIG wins', async () => {
    const root = tempHome();
    const child = join(root, 'a', 'b');
    mkdirSync(child, { recursive: true });
    writeFileSync(join(root, 'kport.yaml'), 'discovery_service:\n  discovery_group: from-parent\n');
    assert.equal((await loadConfig({ cwd: child, env: { HOME: root } })).discovery_service?.discovery_group, 'from-parent');
    writeFileSync(join(child, '.kportrc.json'), JSON.stringify({ discovery_service: { discovery_group: 'from-rc' } }));
    const found = await loadConfig({ cwd: child, env: { HOME: root } });
    assert.equal(found.discovery_service?.discovery_group, 'from-rc');
    assert.equal(found.source, join(child, '.kportrc.json'));
    const explicit = withFile('x.yaml', 'discovery_service:\n  discovery_group: explicit\n');
    assert.equal((await loadConfig({ cwd: child, env: { HOME: root, KPORT_CONFIG: explicit.path } })).discovery_service?.discovery_group, 'explicit');
  });

  test('durations need a unit and respect their floors (poll_interval, leader_lease_ttl, host_cert_ttl, audit_retention), with key path and line', async () => {
    const bad = [
      ['discovery_service:\n  poll_interval: 0\n', /discovery_service\.poll_interval \(line 2\): 0 has no unit: write it with one, such as 0s or 0m/],
      ['discovery_service:\n  poll_interval: 5\n', /discovery_service\.poll_interval \(line 2\): 5 has no unit/],
      [
        'discovery_service:\n  poll_interval: 0s\n',
        /discovery_service\.poll_interval \(line 2\): 0s is below the minimum of 2s: each poll makes AWS calls in every region/,
      ],
      ['discovery_service:\n  poll_interval: 1500ms\n', /poll_interval \(line 2\): 1500ms is below the minimum of 2s/],
      [
        'discovery_service:\n  leader_lease_ttl: 100ms\n',
        /discovery_service\.leader_lease_ttl \(line 2\): 100ms is below the minimum of 2s: the leader renews its lease/,
      ],
      ['discovery_service:\n  leader_lease_ttl: 15\n', /leader_lease_ttl \(line 2\): 15 has no unit/],
      ['auth_service:\n  host_cert_ttl: 1s\n', /auth_service\.host_cert_ttl \(line 2\): 1s is below the minimum of 5s/],
      ['auth_service:\n  audit_retention: 0s\n', /auth_service\.audit_retention \(line 2\): 0s is below the minimum of 1h/],
    ] as const;
    for (const [text, pattern] of bad) {
      const { dir, path } = withFile('kport.yaml', text);
      await assert.rejects(load(path, dir), pattern, text);
    }
    const { dir, path } = withFile(
      'kport.yaml',
      'discovery_service:\n  poll_interval: 2s\n  leader_lease_ttl: 2s\nauth_service:\n  host_cert_ttl: 5s\n  audit_retention: 1h\n',
    );
    const config = await load(path, dir);
    assert.equal(config.discovery_service?.poll_interval, 2000);
    assert.equal(config.discovery_service?.leader_lease_ttl, 2000);
    assert.equal(config.auth_service?.host_cert_ttl, 5000);
  });

  test('a missing -c file is a usage error naming the path', async () => {
    const dir = tempHome();
    await assert.rejects(load(join(dir, 'nope.yaml'), dir), /nope\.yaml does not exist/);
  });
});

test('KPORT_TEST_TIMEOUTS: unset keeps every default; a known wait in milliseconds is taken; anything else is a usage error naming the key', () => {
  assert.deepEqual(testTimeouts({}), {});
  assert.deepEqual(testTimeouts({ KPORT_TEST_TIMEOUTS: '{"tunnelIdleMs":3000,"silentMs":200}' }), { tunnelIdleMs: 3000, silentMs: 200 });
  for (const [value, says] of [
    ['3000', /expected object/],
    ['{"tunnelIdle":3000}', /tunnelIdle/],
    ['{"silentMs":0}', /silentMs/],
    ['{"silentMs":"5s"}', /silentMs/],
    ['{not json', /not JSON/],
  ] as const) {
    assert.throws(
      () => testTimeouts({ KPORT_TEST_TIMEOUTS: value }),
      (err: unknown) => err instanceof UsageError && says.test(err.message) && /unset it/.test(err.message),
      value,
    );
  }
});
