import { UsageError } from '../core/errors.ts';

export interface NormalizedArn {
  arn: string;
  /** Why the ARN was rewritten, in words, when it was. */
  note?: string;
}

const ROLE = /^arn:(aws[a-z-]*):iam::(\d{12}):role\/(.+)$/;
const ASSUMED = /^arn:(aws[a-z-]*):sts::(\d{12}):assumed-role\/([^/]+)\/.+$/;

/**
 * The form aws-iam-authenticator matches mapRoles entries against: an assumed-role ARN becomes
 * its role's ARN, and a role path is dropped (the authenticator canonicalises both).
 */
export function normalizeRoleArn(input: string): NormalizedArn {
  const arn = input.trim();
  const assumed = arn.match(ASSUMED);
  if (assumed) {
    const [, partition, account, name] = assumed;
    return {
      arn: `arn:${partition}:iam::${account}:role/${name}`,
      note: `assumed-role ARN ${arn} is mapped by its role, arn:${partition}:iam::${account}:role/${name}`,
    };
  }
  const role = arn.match(ROLE);
  if (role) {
    const [, partition, account, path] = role;
    const name = path!.split('/').at(-1)!;
    if (path!.includes('/')) {
      return {
        arn: `arn:${partition}:iam::${account}:role/${name}`,
        note: `role path dropped: aws-iam-authenticator matches ${arn} as arn:${partition}:iam::${account}:role/${name}`,
      };
    }
    return { arn };
  }
  if (/^arn:aws[a-z-]*:iam::\d{12}:user\//.test(arn)) {
    throw new UsageError(`--role-arn ${arn} is an IAM user, not a role: pass the ARN of the IAM role the kport proxy runs as.`);
  }
  throw new UsageError(`--role-arn "${arn}" is not an IAM role ARN: expected arn:aws:iam::123456789012:role/NAME.`);
}

export function sameArn(a: string, b: string): boolean {
  try {
    return normalizeRoleArn(a).arn.toLowerCase() === normalizeRoleArn(b).arn.toLowerCase();
  } catch {
    return a.toLowerCase() === b.toLowerCase();
  }
}
