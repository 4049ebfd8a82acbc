/**
 * What the emulated model "hears" and "says": scripted turns, the honest offline-demo default,
 * and a few named scenarios selectable through the API key (`scenario:<name>`).
 */

/** One scripted exchange. */
export interface Turn {
  /** Sent as `inputTranscription` fragments (audio turns only, and only if the setup asked for them). */
  userTranscript: string;
  /** Drives `outputTranscription` (AUDIO) or the `modelTurn` text parts (TEXT). */
  reply: string;
  /** Length of the reply audio. Default: 60 ms per character of `reply`, at least 300 ms. */
  replyAudioMs?: number;
  /** Latency before the first reply content ("slow model"). Default 0. */
  delayMs?: number;
  /**
   * Stop after this many model content messages (audio chunks or text parts): no generationComplete, no
   * turnComplete, the connection stays open (tests watchdogs). The next user turn interrupts the stalled reply.
   */
  stallAfterChunks?: number;
  /**
   * Function calls the model makes before replying, in this order, in one `toolCall` (issue 16): only those whose
   * name the session declared are made. The reply then waits for a `toolResponse` answering every id, and uses
   * the answers (`replyWithToolResults`, else `reply` followed by each answer).
   */
  toolCalls?: { name: string; args?: Record<string, unknown> }[];
  /** The reply text once the calls are answered (default: `reply` + what each function returned). */
  replyWithToolResults?: (answers: { name: string; response: unknown }[]) => string;
  /** Google Search grounding sent with the reply when the session declared `googleSearch`. */
  grounding?: { queries: string[]; sources: { uri: string; title?: string }[] };
}

/** What the emulator knows about the user's turn when it picks the reply. */
export interface TurnInput {
  /** 'audio': ended by VAD, `audioStreamEnd` or `activityEnd`. 'text': `realtimeInput.text` or `clientContent`. */
  kind: 'audio' | 'text';
  /** Measured speech duration (audio turns), 0 for text turns. */
  speechMs: number;
  /** The text the client sent (text turns). */
  text?: string;
  /** 0-based index of this turn in the session (continues across resumed connections). */
  index: number;
}

/** A turn can be fixed data or computed from the input (the default scenario reports what it measured). */
export type TurnSource = Turn | ((input: TurnInput) => Turn);

export type Pacing = 'fast' | 'realtime';

export interface Scenario {
  name?: string;
  /** Used in order, one per user turn, per session. */
  turns: TurnSource[];
  /** Used once `turns` are exhausted. Without it the offline-demo reply is used. */
  fallback?: TurnSource;
  /** 'fast' (default): emit replies at once. 'realtime': pace reply audio at 1x its duration. */
  pacing?: Pacing;
  /** Duration of each reply audio chunk. Default 100 ms (4800 bytes at 24 kHz). */
  outChunkMs?: number;
  /**
   * The model speaks first (proactive audio, an interviewer's opening question): this reply starts right after
   * `setupComplete` on every new session (not on resumed ones); with `eager` timing in the same write.
   */
  opening?: Pick<Turn, 'reply' | 'replyAudioMs'>;
  /**
   * The reply to a greeting: a text turn sent right after setup, before any audio (the relay's cue for the model to
   * speak first). Does not use up a scripted turn. Without it a greeting is answered like any text turn (the
   * offline demo: `You wrote: "…"`).
   */
  greeting?: Turn | ((instruction: string) => Turn);
}

export const DEMO_PREFIX =
  'This is the offline demo of live-audio: no Gemini key is set, so this reply comes from the built-in emulator.';

const MAX_ECHOED_TEXT = 200;

function seconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}

/** The honest offline-demo reply: it says what it is and what it measured, nothing more. */
export function demoTurn(input: TurnInput): Turn {
  if (input.kind === 'text') {
    const text = (input.text ?? '').trim();
    const shown = text.length > MAX_ECHOED_TEXT ? `${text.slice(0, MAX_ECHOED_TEXT)}…` : text;
    return { userTranscript: `[emulated] ${shown}`, reply: `${DEMO_PREFIX} You wrote: "${shown}".` };
  }
  const s = seconds(input.speechMs);
  return {
    userTranscript: `[emulated] I heard ${s} seconds of speech`,
    reply: `${DEMO_PREFIX} I heard ${s} seconds of speech.`,
  };
}

/** The scenario's reply to a greeting instruction, if it has one (else the greeting is answered like any text turn). */
export function greetingTurn(scenario: Scenario, instruction: string): Turn | undefined {
  const g = scenario.greeting;
  if (g === undefined) return undefined;
  return typeof g === 'function' ? g(instruction) : g;
}

/** The offline-demo scenario: every turn gets the honest demo reply. */
export function defaultScenario(opts: { pacing?: Pacing } = {}): Scenario {
  return { name: 'default', turns: [], fallback: demoTurn, pacing: opts.pacing };
}

/** A scripted scenario: `turns` in order, then `fallback` (or the demo reply). */
export function scriptedScenario(turns: TurnSource[], extra: Omit<Scenario, 'turns'> = {}): Scenario {
  return { name: 'scripted', ...extra, turns };
}

/**
 * Scenarios selectable by API key (`?key=scenario:<name>`), for black-box runs where the test cannot
 * call `setScenario()`:
 * - `default`: the offline demo.
 * - `short`: a two-word reply with 300 ms of audio (fast tests).
 * - `realtime`: the offline demo with reply audio paced at 1x (barge-in, playback tests).
 */
export function namedScenario(name: string): Scenario | undefined {
  switch (name) {
    case 'default':
      return defaultScenario();
    case 'short':
      return {
        name: 'short',
        turns: [],
        fallback: { userTranscript: '[emulated] hello', reply: 'Hello there.', replyAudioMs: 300 },
      };
    case 'realtime':
      return defaultScenario({ pacing: 'realtime' });
    case 'tools':
      // Every turn asks the session's declared `get_time` (and `get_weather`, if declared) before replying.
      return {
        name: 'tools',
        turns: [],
        fallback: {
          userTranscript: '[emulated] what time is it',
          reply: 'Here is what I found.',
          replyAudioMs: 300,
          toolCalls: [{ name: 'get_time', args: {} }, { name: 'get_weather', args: { city: 'Berlin' } }],
          grounding: { queries: ['time in Berlin'], sources: [{ uri: 'https://example.org/time', title: 'Time' }] },
        },
      };
    default:
      return undefined;
  }
}

/** The turn at position `scenarioIndex` of the script, else the fallback, else the demo reply. */
export function resolveTurn(scenario: Scenario, scenarioIndex: number, input: TurnInput): Turn {
  const source = scenario.turns[scenarioIndex] ?? scenario.fallback ?? demoTurn;
  return typeof source === 'function' ? source(input) : source;
}

/** Default reply audio length: 60 ms per character, at least 300 ms. */
export function replyAudioMsFor(turn: Turn): number {
  return turn.replyAudioMs ?? Math.max(300, turn.reply.length * 60);
}

/** Word fragments the way the Live API streams transcriptions: `['what', ' time', ' is', ' it']`. */
export function wordFragments(text: string): string[] {
  return text
    .split(/\s+/)
    .filter((w) => w.length > 0)
    .map((w, i) => (i === 0 ? w : ` ${w}`));
}
