import { join } from 'node:path';
import { motoVenvDir } from './versions.ts';
import { freePort, spawnPeer, tempDir, waitFor } from './process.ts';

export interface Moto {
  endpoint: string;
  /** Environment for the AWS SDK: AWS_ENDPOINT_URL and fake static credentials. */
  env: Record<string, string>;
  reset(): Promise<void>;
  /** Turns IAM enforcement on after `allowedCalls` more unauthenticated calls. */
  enforceAuth(allowedCalls?: number): Promise<void>;
  /** Turns IAM enforcement off again. */
  disableAuth(): Promise<void>;
  stop(): Promise<void>;
}

export const MOTO_ACCOUNT = '123456789012';

/**
 * moto_server, with one cost taken out of it: moto checks each CreateCluster's role ARN against the
 * partitions of a new boto3 Session, which reads botocore's endpoints.json again every time (about
 * 60 ms of Python, under the GIL): 300 clusters took 30 s to make. The list never changes, so it is
 * read once; moto's answers are the same.
 */
const MOTO_SERVER = `
import sys
import boto3
import moto.eks.utils
partitions = boto3.Session().get_available_partitions()
class Session:
    def get_available_partitions(self):
        return partitions
moto.eks.utils.Session = Session
from moto.server import main
sys.argv[0] = 'moto_server'
sys.exit(main())
`;

/** moto's server: a real AWS emulator reached only through the SDK's AWS_ENDPOINT_URL. */
export async function startMoto(opts: { env?: Record<string, string> } = {}): Promise<Moto> {
  const port = await freePort();
  const dir = tempDir('moto');
  const peer = spawnPeer('moto', join(motoVenvDir(), 'bin', 'python3'), ['-c', MOTO_SERVER, '-H', '127.0.0.1', '-p', String(port)], { dir, env: opts.env });
  const endpoint = `http://127.0.0.1:${port}`;
  await waitFor('moto to answer', async () => (await fetch(`${endpoint}/moto-api/data.json`)).ok, { peer, timeoutMs: 60_000 });
  const post = async (path: string, body?: string) => {
    const res = await fetch(`${endpoint}${path}`, { method: 'POST', ...(body !== undefined && { body }) });
    if (!res.ok) throw new Error(`moto ${path}: HTTP ${res.status}`);
  };
  return {
    endpoint,
    env: {
      AWS_ENDPOINT_URL: endpoint,
      AWS_ACCESS_KEY_ID: 'AKIAIOSFODNN7EXAMPLE',
      AWS_SECRET_ACCESS_KEY: 'wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY',
      AWS_REGION: 'us-east-1',
      AWS_EC2_METADATA_DISABLED: 'true',
    },
    reset: () => post('/moto-api/reset'),
    enforceAuth: (allowedCalls = 0) => post('/moto-api/reset-auth', String(allowedCalls)),
    disableAuth: () => post('/moto-api/reset-auth', 'inf'),
    stop: () => peer.stop(),
  };
}
