/**
 * Bearer-token authentication of the admin API. The token comes from the environment
 * variable `admin.token_env` names; with none configured the API is open, which is why it
 * binds 127.0.0.1 by default and warns when bound elsewhere without a token.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { isLoopbackHost, isWildcardHost } from '../../shared/address.ts';
import { SluiceError } from '../../shared/errors.ts';
import { sendError } from './errors.ts';

/** Orchestrators and outer balancers probe these without credentials. */
export const OPEN_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz']);

/**
 * Compares in time independent of where the two differ and of their lengths: both sides
 * are hashed to 32 bytes first, so an attacker learns nothing from response times.
 */
export function tokensMatch(expected: string, presented: string): boolean {
  const a = createHash('sha256').update(expected).digest();
  const b = createHash('sha256').update(presented).digest();
  return timingSafeEqual(a, b);
}

/** The token in `Authorization: Bearer TOKEN`, if the header has that form. */
export function bearerToken(header: string | undefined): string | undefined {
  if (header === undefined) return undefined;
  const match = /^Bearer +(\S+) *$/i.exec(header);
  return match?.[1];
}

/** `open`: paths served without a token (OPEN_ROUTES, plus e.g. the dashboard's page assets). */
export function registerAuth(app: FastifyInstance, token: string | undefined, open: ReadonlySet<string> = OPEN_ROUTES): void {
  if (token === undefined) return;
  app.addHook('onRequest', async (request, reply) => {
    const path = request.url.split('?')[0] ?? '';
    if (open.has(path)) return;
    const presented = bearerToken(request.headers.authorization);
    if (presented === undefined) {
      return sendError(reply, 401, 'UNAUTHORIZED', 'missing "Authorization: Bearer TOKEN" header');
    }
    if (!tokensMatch(token, presented)) return sendError(reply, 401, 'UNAUTHORIZED', 'wrong token');
    return undefined;
  });
}

/** A warning for an admin API reachable beyond this host without a token, else undefined. */
export function exposureWarning(host: string, hasToken: boolean): string | undefined {
  if (hasToken) return undefined;
  if (isLoopbackHost(host)) return undefined;
  const where = isWildcardHost(host) ? 'every interface' : host;
  return `the admin API listens on ${where} without a token: anyone who can reach it can change backends (set admin.token_env)`;
}

/**
 * The admin token from the environment variable `token_env` names. Naming a variable that
 * is unset or empty is refused: an operator who asked for a token must not get an open API.
 */
export function adminToken(tokenEnv: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (tokenEnv === undefined) return undefined;
  const token = env[tokenEnv];
  if (token === undefined || token.trim() === '') {
    throw new SluiceError('SLUICE_CONFIG_INVALID', `admin.token_env names ${tokenEnv}, which is not set (or empty): refusing to serve the admin API without its token`);
  }
  return token;
}
