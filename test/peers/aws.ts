import { CreateAccessKeyCommand, CreateUserCommand, IAMClient, PutUserPolicyCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { motoVenvDir } from './versions.ts';
import type { Moto } from './moto.ts';

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

export interface AccessKeys {
  accessKeyId: string;
  secretAccessKey: string;
}

/** An IAM user with real moto access keys, allowed `actions` (default: everything). */
export async function createIamUserKeys(moto: Moto, userName: string, actions: string[] = ['*'], deny: string[] = []): Promise<AccessKeys> {
  const iam = new IAMClient({ region: 'us-east-1', endpoint: moto.endpoint, credentials: { accessKeyId: 'AKIDADMIN', secretAccessKey: 'x' } });
  await iam.send(new CreateUserCommand({ UserName: userName }));
  const statements = [{ Effect: 'Allow', Action: actions, Resource: '*' }, ...(deny.length ? [{ Effect: 'Deny', Action: deny, Resource: '*' }] : [])];
  await iam.send(
    new PutUserPolicyCommand({ UserName: userName, PolicyName: 'test', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: statements }) }),
  );
  const { AccessKey } = await iam.send(new CreateAccessKeyCommand({ UserName: userName }));
  return { accessKeyId: AccessKey!.AccessKeyId!, secretAccessKey: AccessKey!.SecretAccessKey! };
}

/**
 * Checks an EKS token as aws-iam-authenticator does, with botocore recomputing the signature
 * (moto's IAM enforcement cannot verify presigned URLs: it reads only the Authorization header).
 */
export async function verifyEksToken(token: string, cluster: string, secretAccessKey: string): Promise<{ valid: boolean; reason: string }> {
  const { stdout } = await run(join(motoVenvDir(), 'bin', 'python'), [join(here, 'verify_eks_token.py'), token, cluster, secretAccessKey]);
  return JSON.parse(stdout);
}

const ADMIN = { accessKeyId: 'AKIDADMIN', secretAccessKey: 'x' };

/** An EKS client for a moto account (x-moto-account-id), to seed clusters as AWS would hold them. */
export async function eksAdmin(moto: Moto, region: string, account?: string, credentials = ADMIN) {
  const { EKSClient } = await import('@aws-sdk/client-eks');
  const client = new EKSClient({ region, endpoint: moto.endpoint, credentials });
  if (account) {
    client.middlewareStack.add(
      (next) => async (args) => {
        (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = account;
        return next(args);
      },
      { step: 'build', name: 'motoAccount' },
    );
  }
  return client;
}

export async function createClusters(
  moto: Moto,
  specs: Array<{ name: string; region: string; account?: string; tags?: Record<string, string> }>,
  credentials = ADMIN,
): Promise<void> {
  const { CreateClusterCommand } = await import('@aws-sdk/client-eks');
  const { mapLimit } = await import('../../src/discovery/concurrency.ts');
  const clients = new Map<string, Awaited<ReturnType<typeof eksAdmin>>>();
  await mapLimit(specs, 8, async (s) => {
    const key = `${s.region}/${s.account ?? ''}`;
    if (!clients.has(key)) clients.set(key, await eksAdmin(moto, s.region, s.account, credentials));
    await clients
      .get(key)!
      .send(new CreateClusterCommand({ name: s.name, roleArn: `arn:aws:iam::${s.account ?? '123456789012'}:role/eks`, resourcesVpcConfig: {}, tags: s.tags }));
  });
  for (const c of clients.values()) c.destroy();
}

/** A role in `account` that principals of the default account may assume, allowed `actions`. */
export async function createRole(moto: Moto, account: string, name: string, actions: string[] = ['*']): Promise<string> {
  const { IAMClient, CreateRoleCommand, PutRolePolicyCommand } = await import('@aws-sdk/client-iam');
  const iam = new IAMClient({ region: 'us-east-1', endpoint: moto.endpoint, credentials: ADMIN });
  iam.middlewareStack.add(
    (next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = account;
      return next(args);
    },
    { step: 'build', name: 'motoAccount' },
  );
  const trust = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Principal: { AWS: 'arn:aws:iam::123456789012:root' }, Action: 'sts:AssumeRole' }] };
  const { Role } = await iam.send(new CreateRoleCommand({ RoleName: name, AssumeRolePolicyDocument: JSON.stringify(trust) }));
  await iam.send(
    new PutRolePolicyCommand({
      RoleName: name,
      PolicyName: 'discovery',
      PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: actions, Resource: '*' }] }),
    }),
  );
  iam.destroy();
  return Role!.Arn!;
}
