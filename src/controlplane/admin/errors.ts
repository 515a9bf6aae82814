/**
 * The admin API's error shape, `{"error": CODE, "message": TEXT}`, for everything: route
 * refusals, Fastify's own errors (bad JSON, body too large, wrong content type) and unknown
 * routes. A message says what was wrong in the request, never how the server works inside.
 */
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { BackendCommandError } from '../../shared/messages.ts';

export type ApiErrorCode =
  | 'BAD_REQUEST'
  | 'BAD_JSON'
  | 'UNAUTHORIZED'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'BODY_TOO_LARGE'
  | 'UNSUPPORTED_MEDIA_TYPE'
  | 'UNAVAILABLE'
  | 'NO_CAPACITY'
  | 'INTERNAL';

export interface ApiError {
  readonly error: ApiErrorCode;
  readonly message: string;
}

export function sendError(reply: FastifyReply, status: number, error: ApiErrorCode, message: string): FastifyReply {
  return reply.code(status).send({ error, message } satisfies ApiError);
}

export const COMMAND_ERROR_STATUS: Record<BackendCommandError, number> = {
  NOT_FOUND: 404,
  CONFLICT: 409,
  // Insufficient Storage: a fixed capacity limit (capacity.ts), named in the message.
  NO_CAPACITY: 507,
  UNAVAILABLE: 503,
};

export function registerErrorHandlers(app: FastifyInstance, bodyLimit: number): void {
  app.setNotFoundHandler((request, reply) => sendError(reply, 404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        return sendError(reply, 413, 'BODY_TOO_LARGE', `body: larger than ${bodyLimit} bytes`);
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendError(reply, 415, 'UNSUPPORTED_MEDIA_TYPE', `body: send JSON with content-type application/json (got ${request.headers['content-type'] ?? 'none'})`);
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return sendError(reply, 400, 'BAD_JSON', 'body: content-type is application/json but the body is empty');
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendError(reply, 400, 'BAD_JSON', 'body: not valid JSON');
      default:
        break;
    }
    const status = error.statusCode ?? 500;
    if (status === 400) return sendError(reply, 400, 'BAD_JSON', `body: ${error.message}`);
    if (status < 500) return sendError(reply, status, 'BAD_REQUEST', error.message);
    request.log.error({ err: error }, 'admin API request failed');
    return sendError(reply, 500, 'INTERNAL', 'internal error; see the daemon log');
  });
}
