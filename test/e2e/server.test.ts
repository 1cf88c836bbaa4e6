// `kport server start` and agent configs as a new user gets them wrong: one sentence, the right exit
// code, nothing written; and what a restart keeps (the CAs, their sealed keys).
import assert from 'node:assert/strict';
import { createServer } from 'node:net';
import { readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { execa } from 'execa';
import { stringify } from 'yaml';
import { KPORT_BIN } from '../helpers/agent.ts';
import { startServer } from '../helpers/network.ts';
import { tempDir } from '../peers/process.ts';

function kportIn(dir: string) {
  return (args: string[], config: unknown) => {
    writeFileSync(join(dir, 'kport.yaml'), typeof config === 'string' ? config : stringify(config));
    return execa(process.execPath, [KPORT_BIN, '-c', join(dir, 'kport.yaml'), ...args], {
      cwd: dir,
      env: { HOME: dir, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
    });
  };
}

describe('kport server start', { timeout: 120_000 }, () => {
  test('a config without the auth and proxy services, a bad listen address, a busy port: one sentence each', async () => {
    const dir = tempDir('server-bad');
    const kport = kportIn(dir);
    const data = join(dir, 'data');
    let res = await kport(['server', 'start'], { teleport: { data_dir: data } });
    assert.equal(res.exitCode, 2);
    assert.match(
      String(res.stderr),
      /kport server start runs the auth and proxy services: set auth_service\.enabled: yes and proxy_service\.enabled: yes in .*kport\.yaml\./,
    );
    res = await kport(['server', 'start'], {
      teleport: { data_dir: data },
      auth_service: { enabled: 'yes' },
      proxy_service: { enabled: 'yes', listen_addr: 'localhost' },
    });
    assert.equal(res.exitCode, 2);
    assert.match(String(res.stderr), /proxy_service\.listen_addr "localhost" is not host:port, such as 127\.0\.0\.1:3080\./);
    const busy = createServer().listen(0, '127.0.0.1');
    await new Promise((r) => busy.once('listening', r));
    const port = (busy.address() as { port: number }).port;
    try {
      res = await kport(['server', 'start'], {
        teleport: { data_dir: data },
        auth_service: { enabled: 'yes' },
        proxy_service: { enabled: 'yes', listen_addr: `127.0.0.1:${port}` },
      });
      assert.equal(res.exitCode, 1);
      assert.match(String(res.stderr), new RegExp(`Cannot listen on 127\\.0\\.0\\.1:${port} \\(proxy_service\\.listen_addr\\): the port is already in use`));
      assert.doesNotMatch(String(res.stderr), /bug/i);
    } finally {
      busy.close();
    }
  });

  test('a restart keeps the CAs (same pin); their keys sit in the store only sealed; without the seal key the server says what to copy', async () => {
    const server = await startServer();
    const pin = server.pin;
    assert.equal(statSync(join(server.dir, 'data', 'server', 'seal.key')).mode & 0o777, 0o600);
    assert.equal(statSync(join(server.dir, 'data', 'server')).mode & 0o777, 0o700);
    await server.stop();
    await server.start();
    assert.equal(server.pin, pin, 'the same CA after a restart');
    await server.stop();
    const db = readFileSync(join(server.dir, 'data', 'kport.db'));
    assert.equal(db.indexOf('PRIVATE KEY'), -1);
    renameSync(join(server.dir, 'data', 'server', 'seal.key'), join(server.dir, 'seal.key.moved'));
    await assert.rejects(server.start(), /sealed with a key this server does not have: copy .*seal\.key from the first server/);
  });

  test("an agent's config: a malformed proxy_server or ca_pin is a config error; store commands say the store is the server's", async () => {
    const dir = tempDir('agent-bad');
    const kport = kportIn(dir);
    const agent = (teleport: Record<string, unknown>) => ({
      version: 'v3',
      teleport: { data_dir: join(dir, 'data'), join_params: { token_name: join(dir, 'token'), method: 'token' }, ...teleport },
      auth_service: { enabled: 'off' },
      proxy_service: { enabled: 'off' },
      discovery_service: { enabled: 'yes', aws: [{ types: ['eks'], regions: ['us-east-1'] }] },
    });
    writeFileSync(join(dir, 'token'), 'x'.repeat(32));
    let res = await kport(['discover', 'run', '--once'], agent({ proxy_server: 'kport.example.com:3080:1' }));
    assert.equal(res.exitCode, 2);
    assert.match(String(res.stderr), /teleport\.proxy_server "kport\.example\.com:3080:1" is not host:port/);
    res = await kport(['discover', 'run', '--once'], agent({ proxy_server: '127.0.0.1:1', ca_pin: 'sha256:abc' }));
    assert.equal(res.exitCode, 2);
    assert.match(String(res.stderr), /teleport\.ca_pin \(line \d+\): expected sha256: and 64 hex digits/);
    // A server that is not there (yet): said at once, retried, and Ctrl-C stops the wait quietly.
    writeFileSync(join(dir, 'kport.yaml'), stringify(agent({ proxy_server: '127.0.0.1:1' })));
    const waiting = execa(process.execPath, [KPORT_BIN, '-c', join(dir, 'kport.yaml'), 'discover', 'run'], {
      cwd: dir,
      env: { HOME: dir, PATH: process.env.PATH ?? '' },
      extendEnv: false,
      reject: false,
    });
    let said = '';
    waiting.stderr!.on('data', (c: Buffer) => (said += c));
    while (!/retrying/.test(said)) await new Promise((r) => setTimeout(r, 50));
    waiting.kill('SIGINT');
    res = await waiting;
    assert.equal(res.exitCode, 130);
    assert.match(said, /The kport server at 127\.0\.0\.1:1 is unreachable: connection refused \(ECONNREFUSED 127\.0\.0\.1:1\); retrying/);
    assert.doesNotMatch(said, /bug|ERROR/);
    for (const args of [
      ['get', 'kube_cluster'],
      ['tokens', 'add', '--type=discovery'],
    ]) {
      res = await kport(args, agent({ proxy_server: '127.0.0.1:1' }));
      assert.equal(res.exitCode, 2, args.join(' '));
      assert.match(
        String(res.stderr),
        /joins the kport server at 127\.0\.0\.1:1 \(teleport\.proxy_server\), so there is no store here: run this command on the server/,
      );
    }
  });
});
