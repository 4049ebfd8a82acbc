import { EnergyVad, chunkPcm, silencePcm, tonePcm, type VadEvent } from '../../src/emulator';
import { utterancePcm } from '../helpers/live-probe';
import { useEmulator } from './helpers';

function feed(vad: EnergyVad, pcm: Buffer, chunkMs: number, rate = 16000): VadEvent[] {
  return chunkPcm(pcm, chunkMs, rate).flatMap((c) => vad.push(c, rate));
}

const turnEnds = (events: VadEvent[]) => events.filter((e) => e.type === 'turnEnd');

describe('EnergyVad (audio time)', () => {
  it.each([20, 100, 1000, 7])('finds exactly one turn in 600 ms of tone + 1 s of silence in %d ms chunks', (chunkMs) => {
    const vad = new EnergyVad();
    const events = feed(vad, Buffer.concat([silencePcm(300), utterancePcm(600, 1000)]), chunkMs);
    expect(events).toEqual([
      { type: 'speechStart', atMs: 300 },
      { type: 'turnEnd', atMs: 1400, startMs: 300, speechMs: 600 },
    ]);
  });

  it('ends the turn after silenceDurationMs of silence, not before', () => {
    const vad = new EnergyVad({ silenceDurationMs: 300 });
    expect(turnEnds(feed(vad, utterancePcm(400, 280), 20))).toHaveLength(0);
    expect(turnEnds(feed(vad, silencePcm(20), 20))).toEqual([{ type: 'turnEnd', atMs: 700, startMs: 0, speechMs: 400 }]);
  });

  it('keeps short pauses inside one turn and splits at long ones', () => {
    const vad = new EnergyVad({ silenceDurationMs: 500 });
    const pcm = Buffer.concat([tonePcm(300), silencePcm(300), tonePcm(300), silencePcm(600), tonePcm(400), silencePcm(600)]);
    expect(turnEnds(feed(vad, pcm, 100)).map((e) => e.type === 'turnEnd' && e.speechMs)).toEqual([900, 400]);
  });

  it('ignores blips shorter than minSpeechMs and audio below the threshold', () => {
    const vad = new EnergyVad();
    const pcm = Buffer.concat([tonePcm(100), silencePcm(600), tonePcm(1000, { amplitude: 600 }), silencePcm(600)]);
    expect(feed(vad, pcm, 100)).toEqual([]); // amplitude 600 → RMS 424 < 500
  });

  it('works at the declared rate (8 kHz and 48 kHz give the same turn)', () => {
    for (const rate of [8000, 48000]) {
      const vad = new EnergyVad();
      const events = feed(vad, utterancePcm(500, 600, rate), 100, rate);
      expect(turnEnds(events)).toEqual([{ type: 'turnEnd', atMs: 1000, startMs: 0, speechMs: 500 }]);
    }
  });

  it('end() (audioStreamEnd) ends pending speech at once, even short speech', () => {
    const vad = new EnergyVad();
    vad.push(tonePcm(100), 16000);
    expect(vad.speechPending).toBe(true);
    expect(vad.end()).toEqual([
      { type: 'speechStart', atMs: 0 },
      { type: 'turnEnd', atMs: 100, startMs: 0, speechMs: 100 },
    ]);
    expect(vad.end()).toEqual([]);
  });
});

describe('emulator turn detection through the SDK', () => {
  const t = useEmulator();

  it.each([20, 100, 1000])('answers exactly one turn for a 440 Hz tone + silence sent in %d ms chunks', async (chunkMs) => {
    const probe = await t.connect();
    probe.sendPcm(utterancePcm(800, 1200), { chunkMs });
    await probe.waitForTurnComplete();
    await t.emu.waitFor(() => t.emu.connections[0].audioBytes === 64000);
    expect(t.emu.connections[0].turns).toBe(1);
    expect(probe.turnCompletes()).toBe(1);
    expect(probe.inputTranscript()).toBe('[emulated] I heard 0.8 seconds of speech');
  });

  it('uses silenceDurationMs from the setup', async () => {
    const probe = await t.connect({ config: { realtimeInputConfig: { automaticActivityDetection: { silenceDurationMs: 1500 } } } });
    probe.sendPcm(utterancePcm(500, 1000));
    await t.emu.waitFor(() => t.emu.totalAudioBytes() === 48000);
    expect(t.emu.connections[0].turns).toBe(0);
    probe.sendPcm(silencePcm(500));
    await probe.waitForTurnComplete();
  });

  it('ends a pending turn on audioStreamEnd', async () => {
    const probe = await t.connect();
    probe.sendPcm(tonePcm(700));
    probe.requireSession().sendRealtimeInput({ audioStreamEnd: true });
    await probe.waitForTurnComplete();
    expect(probe.inputTranscript()).toBe('[emulated] I heard 0.7 seconds of speech');
    expect(t.emu.connections[0].messages.map((m) => m.kind).slice(-1)).toEqual(['audioStreamEnd']);
  });

  it('with automatic VAD disabled, activityStart…activityEnd brackets the turn', async () => {
    const realtimeInputConfig = { automaticActivityDetection: { disabled: true } };
    const probe = await t.connect({ config: { realtimeInputConfig, inputAudioTranscription: {} } });
    const s = probe.requireSession();
    probe.sendPcm(utterancePcm(600, 2000)); // no turn without activity signals
    s.sendRealtimeInput({ activityStart: {} });
    probe.sendPcm(silencePcm(1500)); // manual mode trusts the client, even for silence
    s.sendRealtimeInput({ activityEnd: {} });
    await probe.waitForTurnComplete();
    expect(probe.inputTranscript()).toBe('[emulated] I heard 1.5 seconds of speech');
    expect(t.emu.connections[0].turns).toBe(1);
  });
});
