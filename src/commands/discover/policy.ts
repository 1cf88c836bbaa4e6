import { UserError } from '../../core/errors.ts';
import { serialize } from '../../core/output.ts';
import { agentPolicy, rolePolicy } from '../../discovery/policy.ts';
import type { CommandDef } from '../command.ts';

export const discoverPolicy: CommandDef = {
  path: ['discover', 'policy'],
  summary: 'Print the minimal IAM policy the discovery agent needs for the configured matchers',
  examples: ['kport discover policy', 'kport discover policy --for-role arn:aws:iam::222222222222:role/discovery'],
  options: [{ flags: '--for-role <arn>', description: 'print the policy an assume_role_arn role itself needs' }],
  async run({ opts, ctx, session }) {
    const matchers = (await session.config()).discovery_service?.aws ?? [];
    if (matchers.length === 0) throw new UserError('No discovery_service.aws matchers are configured: add one (see README "Configuration").', 2);
    const policy = typeof opts.forRole === 'string' ? rolePolicy(matchers, opts.forRole) : agentPolicy(matchers);
    if (!policy) throw new UserError(`No matcher uses assume_role_arn ${opts.forRole}.`, 2);
    // IAM reads JSON, so text is JSON too; yaml is there for people who keep policies as YAML.
    ctx.stdout.write(session.format === 'yaml' ? serialize(policy, 'yaml') : `${JSON.stringify(policy, null, 2)}\n`);
  },
};
