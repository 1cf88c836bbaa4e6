import { terminalSafeJson, serialize } from '../../core/output.ts';
import { stoppedExitCode } from '../../core/stop.ts';
import type { CommandDef } from '../command.ts';
import { discoveryReporting } from '../discover/run.ts';

export const serverStart: CommandDef = {
  path: ['server', 'start'],
  localStore: true,
  summary: 'Run the kport server in the foreground: auth (CAs, joins) and proxy on one TLS port',
  examples: ['kport server start -c kport.yaml', 'kport server start -c kport.yaml -o json', 'kport server start -c kport.yaml --diag-addr 127.0.0.1:3000'],
  options: [
    {
      flags: '--diag-addr <host:port>',
      description: 'serve /healthz, /readyz and /metrics over plain HTTP there (default: teleport.diag_addr; off when neither is set)',
    },
  ],
  async run({ ctx, session, opts }) {
    const config = await session.config();
    const { startServer } = await import('../../service/server.ts');
    const server = await startServer({
      config,
      backend: () => session.backend(),
      ctx,
      log: (line) => ctx.stderr.write(`${terminalSafeJson(line)}\n`),
      discovery: discoveryReporting(ctx, session.format),
      ...(typeof opts.diagAddr === 'string' && { diagAddr: opts.diagAddr }),
    });
    const { url, pin, created, first } = server;
    if (session.format !== 'text') {
      ctx.stdout.write(
        serialize(
          {
            listen: url,
            ca_pin: pin,
            created_authorities: created,
            ...(server.diag && { diagnostics: server.diag }),
            ...(first && { first_user: { user: first.user, invite: first.invite, expires: first.expires } }),
          },
          session.format,
        ),
      );
    } else {
      // The code is not in the command: login asks for it, so it never sits in the process list.
      if (first)
        ctx.stdout.write(
          `No editor can log in yet: a one-time invite for user ${first.user} (role${first.roles.length === 1 ? '' : 's'} ${first.roles.join(', ')}), valid until ${first.expires} (a restart replaces it); run this, which asks for the code:\n  kport login --proxy ${server.loginHost}:${server.port} --ca-pin ${pin} --invite\n  invite code: ${first.invite}\n`,
        );
      if (created) ctx.stdout.write(`Created the cluster CAs (server TLS, host, user) in the store; their keys are sealed with ${server.sealKeyPath}.\n`);
      if (server.diag) ctx.stdout.write(`Diagnostics (/healthz, /readyz, /metrics) on ${server.diag}.\n`);
      // One stable ready line: the address, the pin agents check, and what to run next.
      ctx.stdout.write(`kport server listening on ${url}, CA pin: ${pin}; join agents with a token from \`kport tokens add --type=discovery\`.\n`);
    }
    await server.run();
    // One line, so a log shows the server ended on purpose and why, not that it vanished.
    const why = (ctx.signal.reason as Error | undefined)?.message ?? '';
    ctx.logger.info(`kport server stopped (${/^SIG[A-Z]+$/.test(why) ? why : 'interrupted'}); it no longer listens on ${url}.`);
    return stoppedExitCode(ctx.signal, { service: true });
  },
};
