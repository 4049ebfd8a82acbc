/** The audio-path settings: defaults, every variable read, bad values refused with the variable's name. */
import { ConfigError, loadConfig } from '../../src/config/config';

describe('audio path settings', () => {
  it('has the documented defaults', () => {
    expect(loadConfig({}).audio).toMatchObject({
      reorderWaitMs: 1500,
      reorderMaxBytes: 1024 * 1024,
      maxRealtimeFactor: 2,
      pacingBurstMs: 5000,
      maxUpstreamFrameMs: 100,
      upstreamMaxBufferedBytes: 256 * 1024,
      decoderStallMs: 5000,
      decoderRestartsPerMinute: 10,
    });
  });

  it('reads every variable', () => {
    expect(
      loadConfig({
        LIVE_AUDIO_REORDER_WAIT_MS: '800',
        LIVE_AUDIO_REORDER_MAX_BYTES: '65536',
        LIVE_AUDIO_MAX_REALTIME_FACTOR: '1.5',
        LIVE_AUDIO_PACING_BURST_MS: '2000',
        LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS: '1000',
        LIVE_AUDIO_UPSTREAM_MAX_BUFFERED_BYTES: '131072',
        LIVE_AUDIO_DECODER_STALL_MS: '3000',
        LIVE_AUDIO_DECODER_RESTARTS_PER_MINUTE: '0',
      }).audio,
    ).toMatchObject({
      reorderWaitMs: 800,
      reorderMaxBytes: 65536,
      maxRealtimeFactor: 1.5,
      pacingBurstMs: 2000,
      maxUpstreamFrameMs: 1000,
      upstreamMaxBufferedBytes: 131072,
      decoderStallMs: 3000,
      decoderRestartsPerMinute: 0,
    });
  });

  it.each([
    ['LIVE_AUDIO_REORDER_WAIT_MS', 'soon'],
    ['LIVE_AUDIO_REORDER_WAIT_MS', '60000'],
    ['LIVE_AUDIO_REORDER_MAX_BYTES', '100'],
    ['LIVE_AUDIO_MAX_REALTIME_FACTOR', '0.5'],
    ['LIVE_AUDIO_MAX_REALTIME_FACTOR', 'fast'],
    ['LIVE_AUDIO_PACING_BURST_MS', '10'],
    ['LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS', '10'],
    ['LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS', '1s'],
    ['LIVE_AUDIO_DECODER_STALL_MS', '0'],
    ['LIVE_AUDIO_DECODER_RESTARTS_PER_MINUTE', '-1'],
  ])('refuses %s=%s', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(name));
  });
});

describe('the largest upstream frame', () => {
  it('may not exceed the pacing burst (a larger frame would never get the credit)', () => {
    const env = { LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS: '3000', LIVE_AUDIO_PACING_BURST_MS: '2000' };
    expect(() => loadConfig(env)).toThrow(/LIVE_AUDIO_MAX_UPSTREAM_FRAME_MS: must not exceed LIVE_AUDIO_PACING_BURST_MS/);
    expect(loadConfig({ ...env, LIVE_AUDIO_PACING_BURST_MS: '3000' }).audio.maxUpstreamFrameMs).toBe(3000);
  });
});
