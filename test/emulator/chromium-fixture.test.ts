import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { Modality } from '@google/genai';
import { scriptedScenario } from '../../src/emulator';
import { silencePcm } from '../helpers/live-probe';
import { decodeWebmToPcm16k, useEmulator } from './helpers';

const FIXTURE = path.join(__dirname, '..', 'fixtures', 'audio', 'chromium-hello-1000ms');

describe('real Chromium recording (WebM/Opus → 16 kHz PCM)', () => {
  const meta = JSON.parse(readFileSync(path.join(FIXTURE, 'meta.json'), 'utf8')) as { spokenText: string };
  const reply = 'Nice to meet you, Alex. Let us start the interview.';
  const fallback = { userTranscript: meta.spokenText, reply, replyAudioMs: 500 };
  const t = useEmulator({ scenario: scriptedScenario([], { fallback }) });

  it('detects speech in the decoded recording and answers with the scenario texts', async () => {
    const chunks = readdirSync(FIXTURE)
      .filter((f) => /^chunk-\d+\.webm$/.test(f))
      .sort()
      .map((f) => readFileSync(path.join(FIXTURE, f)));
    const pcm = await decodeWebmToPcm16k(Buffer.concat(chunks));
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
    expect(probe.inputTranscript().startsWith(meta.spokenText)).toBe(true);
    expect(probe.outputTranscript().startsWith(reply)).toBe(true);
    expect(probe.audioBytes()).toBe(rec.turns * 5 * 4800);
  });
});
