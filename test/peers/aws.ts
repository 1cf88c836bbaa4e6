import { CreateAccessKeyCommand, CreateUserCommand, IAMClient, PutUserPolicyCommand } from '@aws-sdk/client-iam';
import { execFile } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { decodeEksToken } from '../../src/aws/eks-token.ts';
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
  const statements = [
    { Effect: 'Allow', Action: actions, Resource: '*' },
    ...(deny.length ? [{ Effect: 'Deny', Action: deny, Resource: '*' }] : []),
  ];
  await iam.send(new PutUserPolicyCommand({ UserName: userName, PolicyName: 'test', PolicyDocument: JSON.stringify({ Version: '2012-10-17', Statement: statements }) }));
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

