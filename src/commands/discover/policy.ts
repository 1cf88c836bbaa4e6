import { UserError } from '../../core/errors.ts';
import { agentPolicy, rolePolicy } from '../../discovery/policy.ts';
import type { CommandDef } from '../command.ts';

export const discoverPolicy: CommandDef = {
  path: ['discover', 'policy'],
  summary: 'Print the minimal IAM policy the discovery agent needs for the configured matchers',
  options: [{ flags: '--for-role <arn>', description: 'print the policy an assume_role_arn role itself needs' }],
  async run({ opts, ctx, session }) {
    const matchers = (await session.config()).discovery_service?.aws ?? [];
    if (matchers.length === 0) throw new UserError('No discovery_service.aws matchers are configured: add one (see README "Configuration").', 2);
    const policy = typeof opts.forRole === 'string' ? rolePolicy(matchers, opts.forRole) : agentPolicy(matchers);
    if (!policy) throw new UserError(`No matcher uses assume_role_arn ${opts.forRole}.`, 2);
    ctx.stdout.write(`${JSON.stringify(policy, null, 2)}\n`);
  },
};
