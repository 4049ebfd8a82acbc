/** Shared pieces of the issue 16 (tools) suites. */
import { scriptedScenario, type Scenario } from '../../src/emulator';

export const API = '/api/v1/live-audio';

export const GET_TIME = {
  name: 'get_time',
  description: 'The current time in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'] },
};
export const GET_WEATHER = {
  name: 'get_weather',
  description: 'The weather in a city',
  parameters: { type: 'object', properties: { city: { type: 'string' } } },
};

/** Every user turn calls get_time then get_weather (one toolCall, in that order), then replies with the answers. */
export function toolScenario(extra: Partial<Scenario> = {}): Scenario {
  return scriptedScenario([], {
    fallback: {
      userTranscript: 'what time is it in Berlin',
      reply: 'Here you go.',
      replyAudioMs: 300,
      toolCalls: [
        { name: 'get_time', args: { city: 'Berlin' } },
        { name: 'get_weather', args: { city: 'Berlin' } },
      ],
      grounding: { queries: ['weather Berlin'], sources: [{ uri: 'https://weather.example/berlin', title: 'Berlin weather' }] },
    },
    ...extra,
  });
}

/** The suite's seed and the failure messages that carry it (one helper for every suite). */
export { suiteSeed, withSeed } from '../helpers/seed';

/** 16 kHz mono s16le: `speechMs` of a 440 Hz tone (the emulator's VAD hears speech) then `silenceMs` of silence. */
export function speechPcm(speechMs: number, silenceMs: number): Buffer {
  const n = Math.round((speechMs / 1000) * 16000);
  const pcm = Buffer.alloc((n + Math.round((silenceMs / 1000) * 16000)) * 2);
  for (let i = 0; i < n; i++) pcm.writeInt16LE(Math.round(8000 * Math.sin((2 * Math.PI * 440 * i) / 16000)), i * 2);
  return pcm;
}
