import { join } from 'node:path';
import { BINARIES } from './versions.ts';
import { freePort, spawnPeer, tempDir, waitFor, type Peer } from './process.ts';

export interface EtcdMember {
  name: string;
  clientUrl: string;
  stop(signal?: NodeJS.Signals): Promise<void>;
  start(): Promise<void>;
  running(): boolean;
}

export interface EtcdCluster {
  endpoints: string[];
  members: EtcdMember[];
  stop(): Promise<void>;
}

/** etcd on loopback, one member or several; each member can be stopped and restarted. */
export async function startEtcd(opts: { members?: number } = {}): Promise<EtcdCluster> {
  const count = opts.members ?? 1;
  const dir = tempDir('etcd');
  const specs = await Promise.all(Array.from({ length: count }, async (_, i) => ({ name: `m${i}`, client: await freePort(), peer: await freePort() })));
  const initialCluster = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peer}`).join(',');
  const members: EtcdMember[] = specs.map((s) => {
    let proc: Peer | undefined;
    const clientUrl = `http://127.0.0.1:${s.client}`;
    const args = [
      `--name=${s.name}`,
      `--data-dir=${join(dir, s.name)}`,
      `--listen-client-urls=${clientUrl}`,
      `--advertise-client-urls=${clientUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${s.peer}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${s.peer}`,
      `--initial-cluster=${initialCluster}`,
      '--initial-cluster-state=new',
      '--initial-cluster-token=kport-test',
      '--heartbeat-interval=50',
      '--election-timeout=500',
      '--log-level=warn',
      // A test kills a member, never the machine, so no fsync per write can lose data; without it
      // 300 sequential puts took 215-334 ms instead of 340-584 ms on a shared 2-core machine.
      '--unsafe-no-fsync',
    ];
    return {
      name: s.name,
      clientUrl,
      running: () => proc !== undefined && proc.child.exitCode === null,
      async start() {
        proc = spawnPeer(`etcd-${s.name}`, BINARIES.etcd(), args, { dir });
      },
      async stop(signal = 'SIGKILL') {
        await proc?.stop(signal);
        proc = undefined;
      },
    };
  });
  await Promise.all(members.map((m) => m.start()));
  await waitFor(
    'etcd to be healthy',
    async () => {
      for (const m of members) {
        const res = await fetch(`${m.clientUrl}/health`);
        if (!res.ok || (await res.json()).health !== 'true') return false;
      }
      return true;
    },
    { timeoutMs: 30_000 },
  );
  return {
    endpoints: members.map((m) => m.clientUrl),
    members,
    // SIGKILL: its data is thrown away, and three members told to stop at once each try to hand over
    // leadership to the others, which took Peer.stop's whole 5 s grace.
    stop: async () => void (await Promise.all(members.map((m) => m.stop('SIGKILL')))),
  };
}
