import { randomUUID } from 'node:crypto';
import type { RequestHandler } from 'express';

declare global {
  // eslint-disable-next-line @typescript-eslint/no-namespace -- Express's Request type is augmented through its global namespace
  namespace Express {
    interface Request {
      id?: string;
    }
  }
}

const SAFE_ID = /^[A-Za-z0-9_.:-]{1,64}$/;

/** Gives every request an id (a client's safe `X-Request-Id` is kept) and echoes it in the response. */
export const requestId: RequestHandler = (req, res, next) => {
  const given = req.headers['x-request-id'];
  const id = typeof given === 'string' && SAFE_ID.test(given) ? given : randomUUID();
  req.id = id;
  res.setHeader('X-Request-Id', id);
  next();
};
