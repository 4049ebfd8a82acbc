import type { GroundingInfo } from '../tools/tool-types';
import type { SetupEcho } from '../session-setup/effective-setup';
import type { UsageFigures } from '../usage/usage-figures';

/** A function call the model made in a turn, and what became of it (issue 16). */
export interface TranscriptToolCall {
  id: string;
  name: string;
  args: unknown;
  /** `pending` until answered (by the client, or with an error at the timeout), cancelled or dropped. */
  state?: 'pending' | 'answered' | 'cancelled' | 'timed_out' | 'dropped';
  /** What the model was answered. */
  response?: unknown;
  cancelled?: boolean;
}

/** One exchange: what the user said (or the greeting cue), what the model replied, and what it cost. */
export interface TranscriptTurn {
  index: number;
  /** `greeting`: the model opened the conversation (no user words); `user`: the user spoke or typed. */
  kind: 'greeting' | 'user';
  userText: string;
  replyText: string;
  interrupted: boolean;
  /** Epoch ms of the turn's first event; `endedAt` null while the turn is open. */
  startedAt: number;
  endedAt: number | null;
  /** This turn's usage (Gemini reports usage per turn); null until it arrives. */
  usage: UsageFigures | null;
  toolCalls: TranscriptToolCall[];
  /** Google Search grounding of the reply (queries and sources), when the session has `google_search`. */
  grounding?: GroundingInfo;
  /** Text beyond the per-turn cap was dropped. */
  truncated: boolean;
}

/** A session's transcript: plain JSON (stored in memory now, Redis later; sent in the session-end webhook). */
export interface TranscriptRecord {
  sessionId: string;
  owner: string;
  startedAt: number;
  endedAt: number | null;
  endReason: string | null;
  turns: TranscriptTurn[];
  /** Sum of every usage report of the session: the turns' and the connections' own (setup billed per connection). */
  usage: UsageFigures;
  /** Usage not attributable to a turn (the setup of each connection, reconnects included). */
  overheadUsage: UsageFigures;
  /** Oldest turns dropped to stay within the per-session bound. */
  droppedTurns: number;
  /** The effective setup the session ran with (kept with the stored transcript of an ended session). */
  setup?: SetupEcho | null;
}
