import { Modality } from '@google/genai';
import { scriptedScenario } from '../../src/emulator';
import { silencePcm } from '../helpers/live-probe';
import { referenceDecode } from '../helpers/ffmpeg';
import { HELLO, loadRecording } from '../helpers/fixtures';
import { useEmulator } from './helpers';

describe('real Chromium recording (WebM/Opus → 16 kHz PCM)', () => {
  const recording = loadRecording(HELLO);
  const reply = 'Nice to meet you, Alex. Let us start the interview.';
  const fallback = { userTranscript: recording.spokenText, reply, replyAudioMs: 500 };
  const t = useEmulator({ scenario: scriptedScenario([], { fallback }) });

  it('detects speech in the decoded recording and answers with the scenario texts', async () => {
    const pcm = referenceDecode(Buffer.concat(recording.chunks));
    expect(pcm.length).toBeGreaterThan(32000 * 4); // about 6 s of audio

    const probe = await t.connect({
      config: { responseModalities: [Modality.AUDIO], inputAudioTranscription: {}, outputAudioTranscription: {} },
    });
    probe.sendPcm(Buffer.concat([pcm, silencePcm(600)]), { chunkMs: 100 });
    await probe.waitForTurnComplete(1, 5000);
    await t.emu.waitFor(() => t.emu.totalAudioBytes() === pcm.length + 19200);

    const rec = t.emu.connections[0];
    expect(rec.turns).toBeGreaterThanOrEqual(1);
    expect(rec.audioChunks.slice(0, -1).every((n) => n === 3200)).toBe(true);
    expect(probe.inputTranscript().startsWith(recording.spokenText)).toBe(true);
    expect(probe.outputTranscript().startsWith(reply)).toBe(true);
    expect(probe.audioBytes()).toBe(rec.turns * 5 * 4800);
  });
});
