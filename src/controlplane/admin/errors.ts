/**
 * The admin API's error shape, `{"error": CODE, "message": TEXT}`, for everything: route
 * refusals, Fastify's own errors (bad JSON, body too large, wrong content type) and unknown
 * routes. A message says what was wrong in the request, never how the server works inside.
 */
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import type { FastifyError, FastifyInstance, FastifyReply } from 'fastify';
import type { BackendCommandError } from '../../shared/messages.ts';
import { FORBIDDEN_KEY } from './json-body.ts';

/** Every code the API answers with; openapi.ts lists them from here. */
export const API_ERROR_CODES = [
  'BAD_REQUEST',
  'BAD_JSON',
  'UNAUTHORIZED',
  'CROSS_SITE_REFUSED',
  'NOT_FOUND',
  'CONFLICT',
  'BODY_TOO_LARGE',
  'HEADERS_TOO_LARGE',
  'REQUEST_TIMEOUT',
  'UNSUPPORTED_MEDIA_TYPE',
  'CONFIG_INVALID',
  'UNAVAILABLE',
  'NO_CAPACITY',
  'INTERNAL',
] as const;

export type ApiErrorCode = (typeof API_ERROR_CODES)[number];

export interface ApiError {
  readonly error: ApiErrorCode;
  readonly message: string;
}

export function sendError(reply: FastifyReply, status: number, error: ApiErrorCode, message: string): FastifyReply {
  return reply.code(status).send({ error, message } satisfies ApiError);
}

export const COMMAND_ERROR_STATUS: Record<BackendCommandError, number> = {
  BAD_REQUEST: 400,
  NOT_FOUND: 404,
  CONFLICT: 409,
  // Insufficient Storage: a fixed capacity limit (capacity.ts), named in the message.
  NO_CAPACITY: 507,
  UNAVAILABLE: 503,
};

/** With a registry a write's answer carries the etcd revision it was written at (absent without one). */
export function withRevision(revision: number | undefined): { revision?: number } {
  return revision === undefined ? {} : { revision };
}

export function registerErrorHandlers(app: FastifyInstance): void {
  app.setNotFoundHandler((request, reply) => sendError(reply, 404, 'NOT_FOUND', `no route ${request.method} ${request.url.split('?')[0] ?? ''}`));

  app.setErrorHandler((error: FastifyError, request, reply) => {
    switch (error.code) {
      case 'FST_ERR_CTP_BODY_TOO_LARGE':
        // The route's own limit: PUT /listeners/:name/acl takes more than the others.
        return sendError(reply, 413, 'BODY_TOO_LARGE', `body: larger than ${request.routeOptions.bodyLimit} bytes`);
      case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
        return sendError(reply, 415, 'UNSUPPORTED_MEDIA_TYPE', `body: send JSON with content-type application/json (got ${request.headers['content-type'] ?? 'none'})`);
      case 'FST_ERR_CTP_EMPTY_JSON_BODY':
        return sendError(reply, 400, 'BAD_JSON', 'body: content-type is application/json but the body is empty');
      case 'FST_ERR_CTP_INVALID_JSON_BODY':
        return sendError(reply, 400, 'BAD_JSON', 'body: not valid JSON');
      case FORBIDDEN_KEY:
        return sendError(reply, 400, 'BAD_REQUEST', error.message);
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

/** Request headers larger than this answer 431 (Node's default, stated so the message can name it). */
export const HEADER_LIMIT_BYTES = 16 * 1024;

/**
 * Errors Node's HTTP parser meets before Fastify sees a request (headers too large, bad HTTP,
 * too slow), answered in the API's `{error, message}` shape instead of Fastify's own.
 */
export function clientErrorResponse(code: string | undefined, requestTimeoutMs: number): { readonly status: number; readonly body: ApiError } {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return { status: 431, body: { error: 'HEADERS_TOO_LARGE', message: `request headers: larger than ${HEADER_LIMIT_BYTES} bytes` } };
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return { status: 408, body: { error: 'REQUEST_TIMEOUT', message: `request: not received in full within ${requestTimeoutMs} ms` } };
    default:
      return { status: 400, body: { error: 'BAD_REQUEST', message: 'request: not valid HTTP/1.1' } };
  }
}

export function clientErrorHandler(requestTimeoutMs: number): (error: NodeJS.ErrnoException, socket: Duplex) => void {
  return (error, socket) => {
    // A reset connection has nobody left to answer.
    if (error.code === 'ECONNRESET' || socket.destroyed) return;
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const { status, body } = clientErrorResponse(error.code, requestTimeoutMs);
    const text = JSON.stringify(body);
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(text)}\r\nConnection: close\r\n\r\n${text}`,
      () => socket.destroy(),
    );
  };
}
