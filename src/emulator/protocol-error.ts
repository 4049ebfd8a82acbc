import { CLOSE_INVALID_ARGUMENT, REASON_INVALID_ARGUMENT } from './wire';

/** A client error: the connection is closed with `code` and `reason`; `detail` only goes to the log. */
export class ProtocolError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    readonly detail?: string,
  ) {
    super(detail ?? reason);
  }
}

/** Rejects the message with 1007 'Request contains an invalid argument.'. */
export function invalid(detail: string): never {
  throw new ProtocolError(CLOSE_INVALID_ARGUMENT, REASON_INVALID_ARGUMENT, detail);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON from the wire, of a shape not known here, read field by field
export function isObject(v: unknown): v is Record<string, any> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

