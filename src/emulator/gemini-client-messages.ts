/**
 * Parsing and validation of client messages, mirroring the real service: every violation becomes a
 * {@link ProtocolError} carrying the close code and reason production would use.
 */
import type { RawData } from 'ws';
import { validateSetupForModel } from './model-validation';
import type { ModelCapabilities } from './models';
import { ProtocolError, invalid, isObject } from './protocol-error';
import { INPUT_SAMPLE_RATE } from './pcm';
import { CLOSE_INVALID_ARGUMENT, CLOSE_POLICY, REASON_BAD_KEY, REASON_NON_AUDIO, modelNotFoundReason } from './wire';

export { ProtocolError, invalid, isObject } from './protocol-error';

export type GeminiClientMessageType = 'setup' | 'realtimeInput' | 'clientContent' | 'toolResponse' | 'contextUpdate';
const CLIENT_MESSAGES = new Set<string>(['setup', 'realtimeInput', 'clientContent', 'toolResponse', 'contextUpdate']);

/** A frame (text or binary) must be a JSON object with exactly one known top-level field. */
export function parseGeminiClientFrame(data: RawData, isBinary: boolean): { type: GeminiClientMessageType; body: unknown } {
  const bytes = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  let msg: unknown;
  try {
    msg = JSON.parse(bytes.toString('utf8'));
  } catch {
    return invalid(`not JSON (${isBinary ? 'binary' : 'text'} frame)`);
  }
  if (!isObject(msg)) return invalid('not a JSON object');
  const keys = Object.keys(msg);
  if (keys.length !== 1 || !CLIENT_MESSAGES.has(keys[0])) return invalid(`unexpected fields: ${keys.join(',')}`);
  return { type: keys[0] as GeminiClientMessageType, body: msg[keys[0]] };
}

/** Top-level `setup` fields the real service knows. */
const SETUP_FIELDS = new Set([
  'model',
  'generationConfig',
  'systemInstruction',
  'tools',
  'sessionResumption',
  'inputAudioTranscription',
  'outputAudioTranscription',
  'realtimeInputConfig',
  'contextWindowCompression',
  'proactivity',
  'avatarConfig',
  'safetySettings',
  'labels',
  'historyConfig',
  'explicitVadSignal',
]);

/** What a valid setup asked for. */
export interface NegotiatedSetup {
  /** As sent: `models/<id>`. */
  modelName: string;
  model: ModelCapabilities;
  modality: 'AUDIO' | 'TEXT';
  /** automaticActivityDetection.disabled: the client sends activityStart/activityEnd. */
  manualActivity: boolean;
  /** From automaticActivityDetection, if set. */
  silenceDurationMs: number | undefined;
  /** False with activityHandling NO_INTERRUPTION. */
  interruptible: boolean;
  /** setup.sessionResumption was present. */
  resumption: boolean;
  resumeHandle: string | undefined;
  inputTranscription: boolean;
  outputTranscription: boolean;
}

export interface SetupContext {
  key: string | undefined;
  apiKeys: readonly string[] | undefined;
  models: Record<string, ModelCapabilities>;
  strictSetup: boolean;
  apiVersion: string;
}

/** Checks in the service's order: key, shape, model (1008), modalities. Throws {@link ProtocolError}. */
export function validateSetup(setup: unknown, ctx: SetupContext): NegotiatedSetup {
  if (!ctx.key || (ctx.apiKeys && !ctx.apiKeys.includes(ctx.key))) {
    throw new ProtocolError(CLOSE_INVALID_ARGUMENT, REASON_BAD_KEY);
  }
  if (!isObject(setup)) return invalid('setup is not an object');
  if (ctx.strictSetup) {
    const unknown = Object.keys(setup).filter((f) => !SETUP_FIELDS.has(f));
    if (unknown.length > 0) return invalid(`unknown setup fields: ${unknown.join(',')}`);
  }

  const modelName = setup.model;
  if (typeof modelName !== 'string' || modelName.length === 0) return invalid('setup.model missing');
  const model = modelName.startsWith('models/') ? ctx.models[modelName.slice('models/'.length)] : undefined;
  if (!model) throw new ProtocolError(CLOSE_POLICY, modelNotFoundReason(modelName, ctx.apiVersion));
  validateSetupForModel(setup, modelName.slice('models/'.length), model, ctx.apiVersion);

  const gc = isObject(setup.generationConfig) ? setup.generationConfig : {};
  const modalities: unknown = gc.responseModalities ?? [];
  if (!Array.isArray(modalities) || modalities.length > 1) return invalid('more than one response modality');
  const modality: unknown = modalities[0] ?? 'AUDIO';
  if (modality === 'TEXT' && !model.text) throw new ProtocolError(CLOSE_INVALID_ARGUMENT, REASON_NON_AUDIO);
  if (modality !== 'TEXT' && (modality !== 'AUDIO' || !model.audio)) return invalid(`modality ${String(modality)}`);

  const ric = isObject(setup.realtimeInputConfig) ? setup.realtimeInputConfig : {};
  const aad = isObject(ric.automaticActivityDetection) ? ric.automaticActivityDetection : {};
  const silence = Number(aad.silenceDurationMs);
  const resumption = isObject(setup.sessionResumption);
  const handle = resumption ? setup.sessionResumption.handle : undefined;
  return {
    modelName,
    model,
    modality,
    manualActivity: aad.disabled === true,
    silenceDurationMs: silence > 0 ? silence : undefined,
    interruptible: ric.activityHandling !== 'NO_INTERRUPTION',
    resumption,
    resumeHandle: typeof handle === 'string' && handle.length > 0 ? handle : undefined,
    inputTranscription: setup.inputAudioTranscription !== undefined,
    outputTranscription: setup.outputAudioTranscription !== undefined,
  };
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;
const PCM_MIME = /^audio\/pcm(?:;\s*rate=(\d+))?$/i;

/**
 * `{data: base64 string, mimeType: 'audio/pcm;rate=N'}` → PCM with an even byte count, or a 1007.
 * No rate means 16 kHz (`rateDeclared: false`).
 */
export function parseAudioBlob(blob: unknown): { pcm: Buffer; rate: number; rateDeclared: boolean } {
  if (!isObject(blob)) return invalid('audio is not an object');
  if (typeof blob.data !== 'string') return invalid('audio.data is not a base64 string');
  if (!BASE64.test(blob.data) || blob.data.length % 4 !== 0) return invalid('audio.data is not valid base64');
  const m = typeof blob.mimeType === 'string' ? PCM_MIME.exec(blob.mimeType) : null;
  if (!m) return invalid(`unsupported audio mimeType ${String(blob.mimeType)}`);
  const rate = m[1] === undefined ? INPUT_SAMPLE_RATE : Number(m[1]);
  if (rate < 8000 || rate > 48000) return invalid(`unsupported sample rate ${rate}`);
  const pcm = Buffer.from(blob.data, 'base64');
  if (pcm.length % 2 !== 0) return invalid('audio has an odd number of bytes');
  return { pcm, rate, rateDeclared: m[1] !== undefined };
}

/** The user text of a clientContent message (model-role turns are history, not input). */
export function clientContentText(cc: Record<string, unknown>): string {
  const turns = Array.isArray(cc.turns) ? cc.turns : [];
  return turns
    .filter((t): t is Record<string, unknown> => isObject(t) && t.role !== 'model')
    .flatMap((t) => (Array.isArray(t.parts) ? t.parts : []))
    .map((p: unknown) => (isObject(p) && typeof p.text === 'string' ? p.text : ''))
    .filter((t: string) => t.length > 0)
    .join(' ');
}
