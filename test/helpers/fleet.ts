// Several `kport discover run` agents sharing one backend, for leadership and failover tests.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { Moto } from '../peers/moto.ts';
import { tempDir, waitFor } from '../peers/process.ts';
import { KPORT_BIN, setupAgent, type AgentSetup } from './agent.ts';

export interface FleetAgent {
  name: string;
  setup: AgentSetup;
  hostId(): string;
  proc?: ResultPromise;
  alive: boolean;
  log: string;
  start(): void;
}

export async function startFleetAgent(
  moto: Moto,
  opts: { name: string; group: string; storage: unknown; matchers: unknown[]; leaseTtl?: string; pollInterval?: string },
): Promise<FleetAgent> {
  const setup = await setupAgent(moto, tempDir(`agent-${opts.name}`), { ...opts, name: opts.name });
  const agent: FleetAgent = {
    name: opts.name,
    setup,
    log: '',
    alive: false,
    hostId: () => JSON.parse(readFileSync(join(setup.dir, 'data', 'identity', 'identity.json'), 'utf8')).host_id,
    start() {
      agent.proc = execa(process.execPath, [KPORT_BIN, 'discover', 'run'], { cwd: setup.dir, env: setup.env, extendEnv: false, reject: false });
      agent.alive = true;
      const proc = agent.proc;
      void proc.finally(() => {
        if (agent.proc === proc) agent.alive = false;
      });
      agent.proc.stderr!.on('data', (c: Buffer) => (agent.log += c));
    },
  };
  agent.start();
  return agent;
}

export interface ServiceStatus {
  metadata: { name: string };
  spec: { host_id: string; discovery_group: string; state: string; last_poll?: string };
}

export async function serviceStatus(setup: AgentSetup): Promise<ServiceStatus[]> {
  const res = await execa(process.execPath, [KPORT_BIN, 'get', 'discovery_service', '--format=json'], {
    cwd: setup.dir,
    env: setup.env,
    extendEnv: false,
    reject: false,
  });
  if (res.exitCode !== 0) throw new Error(String(res.stderr));
  return JSON.parse(String(res.stdout));
}

/** The one agent leading `group`, once exactly one says so. */
export async function waitForLeader(agents: FleetAgent[], group: string, opts: { not?: FleetAgent; timeoutMs?: number } = {}): Promise<FleetAgent> {
  return waitFor(
    `one leader of ${group}`,
    async () => {
      const leaders = agents.filter(
        (a) =>
          a !== opts.not &&
          a.alive &&
          /leading discovery group/.test(
            a.log
              .split('\n')
              .filter((l) => /leading discovery group|standby/.test(l))
              .at(-1) ?? '',
          ),
      );
      return leaders.length === 1 ? leaders[0] : undefined;
    },
    { timeoutMs: opts.timeoutMs ?? 60_000 },
  );
}
