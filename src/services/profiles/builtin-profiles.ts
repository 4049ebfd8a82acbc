import { TRANSCRIBE_MODEL_ID } from '../models/capabilities';
import { canonicalVoice } from '../models/voices';
import type { Profile } from './profile';

/** The server-wide settings that make up the `default` profile. */
export interface ServerProfileSettings {
  /** `LIVE_AUDIO_SYSTEM_INSTRUCTION`. */
  systemInstruction?: string;
  /** `LIVE_AUDIO_VOICE` (a prebuilt voice name). */
  voice?: string;
}

export class ProfileConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ProfileConfigError';
  }
}

export const INTERVIEW_INSTRUCTION =
  'You are a professional job interviewer. Conduct a structured interview: ask one question at a time, listen to ' +
  'the whole answer, ask a short follow-up when it helps, then move on to the next topic. Be warm, concise and ' +
  'neutral; never answer for the candidate and never give the questions away in advance. Speak in the language ' +
  'the session was started with.';

export const INTERVIEW_GREETING =
  'Open the interview now: greet the candidate in one short sentence, then ask your first question: ask them to ' +
  'introduce themselves and the role they are preparing for.';

/**
 * The profiles that exist with no profiles file: `default` (the server-wide settings), `interview` (an
 * interviewer that opens with a question) and `transcribe` (the transcription-only model). A file may override
 * any of them.
 */
export function builtinProfiles(server: ServerProfileSettings = {}): Profile[] {
  const voice = server.voice?.trim() ? canonicalVoice(server.voice) : undefined;
  if (server.voice?.trim() && voice === undefined) {
    throw new ProfileConfigError(`LIVE_AUDIO_VOICE: "${server.voice.slice(0, 64)}" is not a prebuilt voice`);
  }
  return [
    {
      name: 'default',
      description: 'The server-wide settings (LIVE_AUDIO_SYSTEM_INSTRUCTION, LIVE_AUDIO_VOICE, the default model)',
      defaults: {
        ...(server.systemInstruction?.trim() ? { system_instruction: server.systemInstruction } : {}),
        ...(voice ? { voice } : {}),
      },
      locked: [],
      source: 'server',
    },
    {
      name: 'interview',
      description: 'A job interviewer that opens the conversation with its first question',
      defaults: { system_instruction: INTERVIEW_INSTRUCTION, greeting: INTERVIEW_GREETING, response_modality: 'audio' },
      locked: [],
      source: 'builtin',
    },
    {
      name: 'transcribe',
      description: 'Speech to text only (gemini-3.5-transcribe-live): no reply, at most 10 minutes of audio',
      defaults: { model: TRANSCRIBE_MODEL_ID, response_modality: 'text', input_transcription: true },
      locked: [],
      source: 'builtin',
    },
  ];
}
