import { OUTPUT_SAMPLE_RATE, pcmBytesFor, samplesFor, tonePcm } from './pcm';
import { replyAudioMsFor, wordFragments, type Pacing, type Turn, type TurnInput } from './scenario';

export type ServerMessage = Record<string, unknown>;

/** One message of a reply, sent `waitMs` after the previous one. */
export interface ReplyStep {
  waitMs: number;
  message: ServerMessage;
}

export interface ReplyPlan {
  /** Everything from the first input transcription to `turnComplete`, in order (cut short when `stalls`). */
  steps: ReplyStep[];
  /** The reply stops mid-way (`turn.stallAfterChunks`) and never completes. */
  stalls: boolean;
  /** Also sent with an interrupted turn's `turnComplete`. */
  usageMetadata: ServerMessage;
  /** Total reply PCM bytes (AUDIO). */
  audioBytes: number;
  /** Tokens this turn adds to the conversation (its input and its reply): later turns re-read them. */
  turnTokens: number;
}

export interface ReplyPlanOptions {
  turn: Turn;
  input: TurnInput;
  modality: 'AUDIO' | 'TEXT';
  /** setup.inputAudioTranscription was present. */
  inputTranscription: boolean;
  /** setup.outputAudioTranscription was present. */
  outputTranscription: boolean;
  pacing: Pacing;
  outChunkMs: number;
  /** Latency before the first model content (turn delay + fault delay). */
  delayMs: number;
  /** Split every audio chunk and text fragment into this many messages (>= 1). */
  splitParts: number;
  /** Input transcription after the first model content instead of before it. */
  lateInputTranscription: boolean;
  /** `generationComplete` and `turnComplete` right after the last content, without waiting out its duration. */
  coalesceEnd?: boolean;
  /** Tokens of the conversation before this turn: re-read, so counted in this turn's prompt. Default 0. */
  contextTokens?: number;
  /** `thoughtsTokenCount` of this reply (models that report thoughts). Default: none reported. */
  thoughtsTokens?: number;
  /** A speech-to-text model: the input transcription and `turnComplete` only, no reply. */
  transcriptionOnly?: boolean;
  /** Tokens of function answers read for this reply (`toolUsePromptTokenCount`). Default 0. */
  toolUsePromptTokens?: number;
  /** `serverContent.groundingMetadata` sent with the first model content (a session with googleSearch). */
  grounding?: { queries: string[]; sources: { uri: string; title?: string }[] };
}

export const OUTPUT_MIME_TYPE = `audio/pcm;rate=${OUTPUT_SAMPLE_RATE}`;
/** Deterministic token accounting: 25 tokens per second of audio, 1 per 4 characters of text. */
export const AUDIO_TOKENS_PER_SECOND = 25;
const REPLY_TONE = { freqHz: 220, amplitude: 1000, sampleRate: OUTPUT_SAMPLE_RATE };

/**
 * Builds the server messages of one reply in production order:
 * inputTranscription fragments → (delay) → modelTurn audio chunks interleaved with outputTranscription
 * fragments (or modelTurn text parts for TEXT) → generationComplete → turnComplete + usageMetadata.
 */
export function planReply(o: ReplyPlanOptions): ReplyPlan {
  const parts = Math.max(1, Math.floor(o.splitParts));
  const inputSteps =
    o.input.kind === 'audio' && (o.inputTranscription || o.transcriptionOnly)
      ? wordFragments(o.turn.userTranscript)
          .flatMap((w) => splitText(w, parts))
          .map((text) => step({ serverContent: { inputTranscription: { text } } }))
      : [];

  if (o.transcriptionOnly) {
    const u = usage(o, 0);
    if (inputSteps[0]) inputSteps[0].waitMs += o.delayMs;
    return {
      steps: [...inputSteps, step({ serverContent: { turnComplete: true }, usageMetadata: u.metadata })],
      stalls: false,
      usageMetadata: u.metadata,
      audioBytes: 0,
      turnTokens: u.turnTokens,
    };
  }
  const content = o.modality === 'AUDIO' ? audioContent(o, parts) : textContent(o, parts);
  const generationComplete: ReplyStep = {
    waitMs: o.coalesceEnd ? 0 : content.trailingWaitMs,
    message: { serverContent: { generationComplete: true } },
  };
  // The delay comes before the first model content (or before generationComplete if there is none).
  (content.steps[0] ?? generationComplete).waitMs += o.delayMs;

  const { metadata: usageMetadata, turnTokens } = usage(o, content.audioMs);
  if (o.grounding) {
    const g = o.grounding;
    content.steps.push(
      step({
        serverContent: {
          groundingMetadata: { webSearchQueries: g.queries, groundingChunks: g.sources.map((s) => ({ web: { uri: s.uri, ...(s.title ? { title: s.title } : {}) } })) },
        },
      }),
    );
  }
  const body = o.lateInputTranscription
    ? [...content.steps.slice(0, 1), ...inputSteps, ...content.steps.slice(1)]
    : [...inputSteps, ...content.steps];

  const stallAfter = o.turn.stallAfterChunks;
  if (stallAfter !== undefined) {
    let contentSeen = 0;
    const cut = body.findIndex((s) => isModelContent(s) && ++contentSeen > stallAfter);
    return { steps: cut < 0 ? body : body.slice(0, cut), stalls: true, usageMetadata, audioBytes: content.audioBytes, turnTokens };
  }
  return {
    steps: [...body, generationComplete, step({ serverContent: { turnComplete: true }, usageMetadata })],
    stalls: false,
    usageMetadata,
    audioBytes: content.audioBytes,
    turnTokens,
  };
}

function isModelContent(s: ReplyStep): boolean {
  return (s.message.serverContent as { modelTurn?: unknown } | undefined)?.modelTurn !== undefined;
}

interface Content {
  steps: ReplyStep[];
  audioMs: number;
  audioBytes: number;
  /** Realtime pacing: the last audio part's duration, waited before generationComplete. */
  trailingWaitMs: number;
}

function audioContent(o: ReplyPlanOptions, parts: number): Content {
  const chunkMs = o.outChunkMs;
  const chunkSamples = samplesFor(chunkMs, OUTPUT_SAMPLE_RATE);
  const chunks = Math.max(1, Math.ceil(replyAudioMsFor(o.turn) / chunkMs));
  const words = o.outputTranscription ? wordFragments(o.turn.reply) : [];
  const steps: ReplyStep[] = [];
  let wait = 0; // realtime pacing: the previous audio part's duration
  let wordsSent = 0;
  for (let i = 0; i < chunks; i++) {
    const pcm = tonePcm(chunkMs, { ...REPLY_TONE, startSample: i * chunkSamples });
    for (const piece of splitPcm(pcm, parts)) {
      steps.push({
        waitMs: wait,
        message: { serverContent: { modelTurn: { parts: [{ inlineData: audioBlob(piece) }] } } },
      });
      wait = o.pacing === 'realtime' ? (piece.length / 2 / OUTPUT_SAMPLE_RATE) * 1000 : 0;
    }
    const wordsDue = Math.floor(((i + 1) * words.length) / chunks);
    for (; wordsSent < wordsDue; wordsSent++) {
      for (const text of splitText(words[wordsSent], parts)) {
        steps.push(step({ serverContent: { outputTranscription: { text } } }));
      }
    }
  }
  const audioBytes = chunks * pcmBytesFor(chunkMs, OUTPUT_SAMPLE_RATE);
  return { steps, audioMs: chunks * chunkMs, audioBytes, trailingWaitMs: wait };
}

function textContent(o: ReplyPlanOptions, parts: number): Content {
  const steps = wordFragments(o.turn.reply)
    .flatMap((w) => splitText(w, parts))
    .map((text) => step({ serverContent: { modelTurn: { parts: [{ text }] } } }));
  return { steps, audioMs: 0, audioBytes: 0, trailingWaitMs: 0 };
}

/**
 * Per-turn usage, never cumulative (models-and-setup.md §4): the prompt is this turn's input plus the context
 * re-read (earlier turns), so prompt counts grow turn by turn like the real service's (143 → 181 → 224).
 */
function usage(o: ReplyPlanOptions, replyAudioMs: number): { metadata: ServerMessage; turnTokens: number } {
  const audioTokens = (ms: number) => Math.ceil((ms / 1000) * AUDIO_TOKENS_PER_SECOND);
  const textTokens = (s: string) => Math.ceil(s.length / 4);
  const input = o.input.kind === 'audio' ? audioTokens(o.input.speechMs) : textTokens(o.input.text ?? '');
  const context = o.contextTokens ?? 0;
  const prompt = input + context;
  const response = o.transcriptionOnly ? 0 : o.modality === 'AUDIO' ? audioTokens(replyAudioMs) : textTokens(o.turn.reply);
  const thoughts = o.transcriptionOnly ? 0 : (o.thoughtsTokens ?? 0);
  const toolUse = o.toolUsePromptTokens ?? 0;
  const promptTokensDetails = [{ modality: o.input.kind === 'audio' ? 'AUDIO' : 'TEXT', tokenCount: input }];
  if (context > 0) promptTokensDetails.push({ modality: 'TEXT', tokenCount: context });
  const metadata: ServerMessage = {
    promptTokenCount: prompt,
    ...(o.transcriptionOnly ? {} : { responseTokenCount: response }),
    ...(thoughts > 0 ? { thoughtsTokenCount: thoughts } : {}),
    ...(toolUse > 0 ? { toolUsePromptTokenCount: toolUse } : {}),
    totalTokenCount: prompt + response + thoughts + toolUse,
    promptTokensDetails,
    ...(o.transcriptionOnly ? {} : { responseTokensDetails: [{ modality: o.modality, tokenCount: response }] }),
  };
  return { metadata, turnTokens: input + response };
}

function audioBlob(pcm: Buffer): { mimeType: string; data: string } {
  return { mimeType: OUTPUT_MIME_TYPE, data: pcm.toString('base64') };
}

function step(message: ServerMessage): ReplyStep {
  return { waitMs: 0, message };
}

/** Splits text into up to `parts` non-empty pieces. */
export function splitText(text: string, parts: number): string[] {
  if (parts <= 1 || text.length <= 1) return [text];
  const size = Math.ceil(text.length / parts);
  const out: string[] = [];
  for (let off = 0; off < text.length; off += size) out.push(text.slice(off, off + size));
  return out;
}

/** Splits PCM into up to `parts` pieces of whole samples. */
export function splitPcm(pcm: Buffer, parts: number): Buffer[] {
  const samples = pcm.length / 2;
  if (parts <= 1 || samples <= 1) return [pcm];
  const size = Math.ceil(samples / parts) * 2;
  const out: Buffer[] = [];
  for (let off = 0; off < pcm.length; off += size) out.push(pcm.subarray(off, off + size));
  return out;
}
