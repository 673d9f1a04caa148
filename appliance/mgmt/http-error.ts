// The API's error shape, in one place: HttpError (what routes and services throw) and the fastify
// error and not-found handlers that turn every failure into {error, details?, retryAfterS?}.
// Must not import routes (services throw HttpError too).

import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';

/** An error reply with the API's error shape and status. */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly details?: object[],
    /** For 429: seconds until the client may try again. */
    readonly retryAfterS?: number,
  ) {
    super(message);
  }
}

/** Schema failures → 400 naming the field; HttpError → its status; anything else → 500, logged. */
export function replyError(err: FastifyError & Partial<HttpError>, req: FastifyRequest, reply: FastifyReply) {
  if (err.validation) {
    const first = err.validation[0];
    const field = `${err.validationContext ?? 'request'}${first?.instancePath ?? ''}`;
    const extra = first?.keyword === 'additionalProperties'
      ? `: unknown field '${String((first.params as { additionalProperty?: string }).additionalProperty)}'` : '';
    return reply.code(400).send({
      error: `${field} ${first?.message ?? 'is invalid'}${extra}`,
      details: err.validation.map((v) => ({ field: `${err.validationContext ?? ''}${v.instancePath}`, message: v.message ?? '' })),
    });
  }
  const status = err.statusCode ?? 500;
  if (status >= 500 && !(err instanceof HttpError)) {
    req.log.error({ err }, 'request failed');
    return reply.code(500).send({ error: 'internal error; see the service log' });
  }
  if (status === 429 && err.retryAfterS) void reply.header('retry-after', String(err.retryAfterS));
  return reply.code(status).send({
    error: err.message,
    ...(err.details ? { details: err.details } : {}),
    ...(err.retryAfterS ? { retryAfterS: err.retryAfterS } : {}),
  });
}

export function replyNotFound(req: FastifyRequest, reply: FastifyReply) {
  return reply.code(404).send({ error: `no such route: ${req.method} ${req.url.split('?')[0]}` });
}
