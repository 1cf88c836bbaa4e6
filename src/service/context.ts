import type { Context } from '../core/context.ts';

/**
 * What a service takes of a command's context: the environment as data, the clock, the logger
 * (stderr lines) and the stop signal. Not stdout nor stdin: services never print (docs/style.md 4).
 */
export type ServiceContext = Pick<Context, 'env' | 'cwd' | 'now' | 'logger' | 'signal'>;
