/** Gemini Live emulator: a loopback server speaking the BidiGenerateContent wire protocol (offline demo + tests). */
export { startGeminiLiveEmulator } from './gemini-live-emulator';
export type { EmulatorOptions, EmulatorRetained, GeminiLiveEmulator, UpgradeRecord } from './gemini-live-emulator';
export type { EmulatorConnectionRecord, ClientMessageKind, EmulatorRetention, UsageTotals } from './connection-records';
export { DEMO_RETENTION, FULL_RETENTION } from './connection-records';
export { EMULATOR_TIMINGS, isEmulatorTiming } from './timing';
export type { EmulatorTiming } from './timing';
export { defaultScenario, scriptedScenario, namedScenario, demoTurn, greetingTurn, DEMO_PREFIX } from './scenario';
export type { Scenario, Turn, TurnInput, TurnSource, Pacing } from './scenario';
export { namedFault } from './faults';
export type { FrameMode } from './wire';
export type { FaultOptions } from './faults';
export { defaultModels } from './models';
export type { ModelCapabilities } from './models';
export { EnergyVad } from './energy-vad';
export type { EnergyVadOptions, VadEvent } from './energy-vad';
export { tonePcm, silencePcm, chunkPcm, rms, pcmBytesFor, pcmDurationMs, INPUT_SAMPLE_RATE, OUTPUT_SAMPLE_RATE } from './pcm';
export {
  REASON_BAD_KEY,
  REASON_DEADLINE,
  REASON_INTERNAL,
  REASON_INVALID_ARGUMENT,
  REASON_NON_AUDIO,
  REASON_QUOTA,
  modelNotFoundReason,
} from './wire';
