/** What a Live model accepts, as far as the emulator's validation goes. */
export interface ModelCapabilities {
  /** `responseModalities: ['AUDIO']` allowed. */
  audio: boolean;
  /** `responseModalities: ['TEXT']` allowed (native-audio models: no, closes 1007 "Cannot extract voices…"). */
  text: boolean;
  /** `clientContent` after the first model turn closes 1007 (Gemini 3.1 Flash Live). */
  restrictClientContent?: boolean;
}

/** The Live models seen on the Gemini API (Nov 2026). All are native-audio: AUDIO output only. */
export function defaultModels(): Record<string, ModelCapabilities> {
  return {
    'gemini-2.5-flash-native-audio-preview-12-2025': { audio: true, text: false },
    'gemini-3.1-flash-live-preview': { audio: true, text: false, restrictClientContent: true },
    'gemini-3.8-live': { audio: true, text: false },
    'gemini-3.8-live-extended-thinking': { audio: true, text: false },
  };
}
