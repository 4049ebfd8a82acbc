import type { LiveModelCapabilities } from '../../src/services/models';

/**
 * Every option the model accepts, set to a non-default value (the per-model setup tests). `proactiveAudio`:
 * send `proactive_audio` whenever the model supports it (`'supported'`), or only where it is a choice the
 * request makes (`'optional'`: a model that always does it takes no request for it through the server's start).
 */
export function richOptions(id: string, c: LiveModelCapabilities, proactiveAudio: 'supported' | 'optional'): Record<string, unknown> {
  const o: Record<string, unknown> = {
    model: id,
    vad: { start_sensitivity: 'low', end_sensitivity: 'high', prefix_padding_ms: 30, silence_duration_ms: 600 },
  };
  if (c.replies) o.response_modality = 'audio';
  if (c.systemInstruction) o.system_instruction = `You are the ${id} test persona.`;
  if (c.voice) o.voice = 'Kore';
  if (c.speechLanguage) o.language = 'de-DE';
  if (c.sampling) Object.assign(o, { temperature: 0.4, max_output_tokens: 256 });
  if (c.thinking.kind === 'level') o.thinking = { level: c.thinking.levels[c.thinking.levels.length - 1] };
  if (c.thinking.kind === 'budget') o.thinking = { budget: 512 };
  if (proactiveAudio === 'optional' ? c.proactiveAudio === 'optional' : c.proactiveAudio !== 'unsupported') o.proactive_audio = true;
  if (c.affectiveDialog) o.affective_dialog = true;
  if (c.transcriptionHints) Object.assign(o, { transcription_languages: ['en-US', 'de-DE'], custom_vocabulary: ['Sculptor', 'Gemini Live'] });
  return o;
}
