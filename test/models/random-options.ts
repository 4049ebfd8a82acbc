import { THINKING_LEVELS } from '../../src/services/models';

/** Seeded random per-session option objects (every field sometimes absent, sometimes odd). */
export function randomOptions(rand: () => number, modelIds: readonly string[]): Record<string, unknown> {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)];
  const maybe = (p = 0.5) => rand() < p;
  const o: Record<string, unknown> = {};
  if (maybe(0.9)) o.model = pick([...modelIds, 'gemini-2.5-pro']);
  if (maybe(0.3)) o.response_modality = pick(['text', 'audio']);
  if (maybe(0.3)) o.input_transcription = maybe();
  if (maybe(0.3)) o.output_transcription = maybe();
  if (maybe(0.4)) o.system_instruction = 'You are a test persona.';
  if (maybe(0.4)) o.voice = pick(['Puck', 'Kore', 'Charon']);
  if (maybe(0.4)) o.language = pick(['en-US', 'de-DE', 'fr']);
  if (maybe(0.3)) o.temperature = Math.round(rand() * 200) / 100;
  if (maybe(0.3)) o.max_output_tokens = 1 + Math.floor(rand() * 2000);
  if (maybe(0.3)) {
    o.vad = maybe(0.3)
      ? { manual: true }
      : { start_sensitivity: pick(['high', 'low']), silence_duration_ms: Math.floor(rand() * 2000) };
  }
  if (maybe(0.4)) o.thinking = maybe() ? { level: pick(THINKING_LEVELS) } : { budget: pick([-1, 0, 128, 24_576, 30_000]) };
  if (maybe(0.4)) o.proactive_audio = maybe();
  if (maybe(0.4)) o.affective_dialog = maybe();
  if (maybe(0.3)) o.transcription_languages = ['en-US'];
  if (maybe(0.3)) o.custom_vocabulary = ['Sculptor', 'Gemini'];
  if (maybe(0.3)) o.greeting = maybe() ? true : 'Open with a question.';
  return o;
}
