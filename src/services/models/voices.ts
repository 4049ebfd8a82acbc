/** Gemini's 30 prebuilt voices (`speechConfig.voiceConfig.prebuiltVoiceConfig.voiceName`; default Puck). */
export const PREBUILT_VOICES: readonly string[] = [
  'Zephyr', 'Puck', 'Charon', 'Kore', 'Fenrir', 'Leda', 'Orus', 'Aoede', 'Callirrhoe', 'Autonoe',
  'Enceladus', 'Iapetus', 'Umbriel', 'Algieba', 'Despina', 'Erinome', 'Algenib', 'Rasalgethi', 'Laomedeia', 'Achernar',
  'Alnilam', 'Schedar', 'Gacrux', 'Pulcherrima', 'Achird', 'Zubenelgenubi', 'Vindemiatrix', 'Sadachbia', 'Sadaltager', 'Sulafat',
];

const BY_LOWER = new Map(PREBUILT_VOICES.map((v) => [v.toLowerCase(), v]));

/** The voice's canonical spelling (`kore` → `Kore`), or undefined for an unknown voice. */
export function canonicalVoice(name: string): string | undefined {
  return BY_LOWER.get(name.trim().toLowerCase());
}
