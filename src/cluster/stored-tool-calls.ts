import { z } from 'zod';
import type { ToolLedgerSnapshot } from '../services/tools/tool-call-ledger';

/**
 * A session's function calls as its Redis record keeps them (field `tools`): the calls waiting for an answer (id,
 * name, args, when asked) and the newest settled ones (id, name, state), so that the instance taking a dead
 * owner's session over carries them on (issue 16 §4 in cluster mode). Bounded: the ledger keeps at most
 * `maxPendingToolCalls` pending and the snapshot 32 settled; args beyond the byte budget are left out
 * (`argsOmitted`: the call stays answerable, only its arguments are not shown again).
 */
export type StoredToolCalls = ToolLedgerSnapshot & { argsOmitted?: string[] };

/** JSON bytes of one call's args kept in the record. */
export const STORED_ARGS_MAX_BYTES = 4 * 1024;
/** JSON bytes of all args kept in the record together. */
export const STORED_ARGS_TOTAL_BYTES = 32 * 1024;

/** The record's form of a ledger snapshot, within the byte budgets above. */
export function toStoredToolCalls(s: ToolLedgerSnapshot): StoredToolCalls {
  let budget = STORED_ARGS_TOTAL_BYTES;
  const argsOmitted: string[] = [];
  const pending = s.pending.map((c) => {
    const bytes = Buffer.byteLength(JSON.stringify(c.args), 'utf8');
    if (bytes > STORED_ARGS_MAX_BYTES || bytes > budget) {
      argsOmitted.push(c.id);
      return { ...c, args: {} };
    }
    budget -= bytes;
    return c;
  });
  return { pending, settled: s.settled, ...(argsOmitted.length > 0 ? { argsOmitted } : {}) };
}

const id = z.string().min(1).max(256);
const name = z.string().min(1).max(128);
const storedSchema = z.object({
  pending: z.array(z.object({ id, name, args: z.record(z.string(), z.unknown()), askedAt: z.number() })).max(256),
  settled: z.array(z.object({ id, name, state: z.enum(['answered', 'cancelled', 'timed_out', 'dropped']) })).max(256),
  argsOmitted: z.array(id).max(256).optional(),
});

/** The record's `tools` field read back (anything malformed reads as no calls: a record is never trusted blindly). */
export function parseStoredToolCalls(raw: unknown): StoredToolCalls {
  const r = storedSchema.safeParse(raw);
  return r.success ? r.data : { pending: [], settled: [] };
}
