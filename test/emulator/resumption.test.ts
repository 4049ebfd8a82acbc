import { Modality } from '@google/genai';
import { REASON_INVALID_ARGUMENT, scriptedScenario, startGeminiLiveEmulator } from '../../src/emulator';
import { connectLive, utterancePcm } from '../helpers/live-probe';
import { useEmulator } from './helpers';

const script = scriptedScenario([
  { userTranscript: 'one', reply: 'First.', replyAudioMs: 100 },
  { userTranscript: 'two', reply: 'Second.', replyAudioMs: 100 },
  { userTranscript: 'three', reply: 'Third.', replyAudioMs: 100 },
]);
const config = (handle?: string) => ({
  responseModalities: [Modality.AUDIO],
  outputAudioTranscription: {},
  sessionResumption: handle ? { handle } : {},
});

describe('session resumption', () => {
  const t = useEmulator({ scenario: script });

  it('a resumed connection continues the script where the handle left it', async () => {
    const first = await t.connect({ config: config() });
    first.sendPcm(utterancePcm(400, 600));
    await first.waitFor((p) => p.resumableHandles().length === 1);
    const [handle] = first.resumableHandles();
    await first.close();

    const second = await t.connect({ config: config(handle) });
    expect(second.session).toBeDefined();
    second.sendPcm(utterancePcm(400, 600));
    await second.waitFor((p) => p.resumableHandles().length === 1);
    expect(first.outputTranscript()).toBe('First.');
    expect(second.outputTranscript()).toBe('Second.');
    expect(second.resumableHandles()).toEqual(['emu-c2-1']);
    expect(t.emu.connections[1].resumedFrom).toBe('emu-c1-1');
    expect(t.emu.connections[1].setup.sessionResumption).toEqual({ handle: 'emu-c1-1' });
  });

  it('an older handle resumes from its own point, and works while the issuing connection is still open', async () => {
    const first = await t.connect({ config: config() });
    first.sendPcm(utterancePcm(400, 600));
    await first.waitFor((p) => p.resumableHandles().length === 1);
    first.sendPcm(utterancePcm(400, 600));
    await first.waitFor((p) => p.resumableHandles().length === 2);

    const resumed = await t.connect({ config: config(first.resumableHandles()[0]) });
    resumed.sendPcm(utterancePcm(400, 600));
    await resumed.waitForTurnComplete();
    expect(resumed.outputTranscript()).toBe('Second.');
  });

  it('an unknown handle closes 1007', async () => {
    const probe = await t.connect({ config: config('emu-nope-1') });
    expect(probe.session).toBeUndefined();
    expect(probe.closeInfo).toMatchObject({ code: 1007, reason: REASON_INVALID_ARGUMENT });
  });
});

describe('resumption handle expiry', () => {
  it('a handle is valid for resumptionTtlMs after its connection ended, then closes 1007', async () => {
    let now = 1_000_000;
    const emu = await startGeminiLiveEmulator({ scenario: script, resumptionTtlMs: 60_000, clock: () => now });
    try {
      const first = await connectLive({ baseUrl: emu.baseUrl, config: config() });
      first.sendPcm(utterancePcm(400, 600));
      await first.waitFor((p) => p.resumableHandles().length === 1);
      now += 3_600_000; // an open connection's handles do not expire
      await first.close();
      await emu.waitFor(() => emu.connections[0].closed !== undefined);

      now += 59_999;
      const inTime = await connectLive({ baseUrl: emu.baseUrl, config: config('emu-c1-1') });
      expect(inTime.session).toBeDefined();
      await inTime.close();

      now += 1;
      const late = await connectLive({ baseUrl: emu.baseUrl, config: config('emu-c1-1') });
      expect(late.closeInfo).toMatchObject({ code: 1007, reason: REASON_INVALID_ARGUMENT });
    } finally {
      await emu.stop();
    }
  });
});
