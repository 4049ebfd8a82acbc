import { parseKeyDirectives } from '../../src/emulator/faults';
import { planReply } from '../../src/emulator/reply-plan';
import { demoTurn, wordFragments } from '../../src/emulator/scenario';
import { formatDuration, parseLiveRequestUrl, truncateReason } from '../../src/emulator/wire';

describe('wire helpers', () => {
  it('parses the SDK path (double slash, prefix, Constrained) and rejects others', () => {
    const v = 'google.ai.generativelanguage.v1beta.GenerativeService';
    const expected = { apiVersion: 'v1beta', method: 'BidiGenerateContent' };
    expect(parseLiveRequestUrl(`//ws/${v}.BidiGenerateContent?key=k`)).toEqual({ ...expected, key: 'k' });
    expect(parseLiveRequestUrl(`/p//ws/${v}.BidiGenerateContent`)).toEqual({ ...expected, key: undefined });
    expect(parseLiveRequestUrl(`//ws/${v}.BidiGenerateContentConstrained?access_token=auth_tokens/x`)?.key).toBe('auth_tokens/x');
    expect(parseLiveRequestUrl(`//ws/${v}.BidiGenerateContentConstrained?key=k`)?.key).toBeUndefined();
    expect(parseLiveRequestUrl(`//ws/${v.replace('v1beta', 'v2')}.BidiGenerateContent`)).toBeUndefined();
    expect(parseLiveRequestUrl('/ws/')).toBeUndefined();
  });

  it('truncates reasons to 123 bytes without splitting characters', () => {
    expect(truncateReason('short')).toBe('short');
    const cut = truncateReason('é'.repeat(100));
    expect(Buffer.byteLength(cut)).toBe(122);
    expect(cut).toBe('é'.repeat(61));
  });

  it('formats protobuf durations', () => {
    expect(formatDuration(50_000)).toBe('50s');
    expect(formatDuration(200)).toBe('0.200s');
    expect(formatDuration(1500)).toBe('1.500s');
  });

  it('parses key directives', () => {
    expect(parseKeyDirectives('scenario:short,fault:drop@2,fault:slow')).toEqual({
      scenario: 'short',
      faults: [{ name: 'drop', firstConnections: 2 }, { name: 'slow', firstConnections: undefined }],
    });
    expect(parseKeyDirectives('AIzaSomething')).toEqual({ faults: [] });
  });
});

describe('scenario and reply plan', () => {
  it('splits words with leading spaces', () => {
    expect(wordFragments('  what time\tis it ')).toEqual(['what', ' time', ' is', ' it']);
  });

  it('the demo turn reports what it measured and says it is the emulator', () => {
    expect(demoTurn({ kind: 'audio', speechMs: 2449, index: 0 }).userTranscript).toBe('[emulated] I heard 2.4 seconds of speech');
    expect(demoTurn({ kind: 'text', speechMs: 0, text: 'x'.repeat(300), index: 0 }).reply).toContain(`"${'x'.repeat(200)}…"`);
  });

  it('realtime pacing waits each audio part’s duration; the delay precedes the first content', () => {
    const plan = planReply({
      turn: { userTranscript: 'hi', reply: 'a b', replyAudioMs: 200 },
      input: { kind: 'audio', speechMs: 1000, index: 0 },
      modality: 'AUDIO',
      inputTranscription: true,
      outputTranscription: true,
      pacing: 'realtime',
      outChunkMs: 100,
      delayMs: 50,
      splitParts: 1,
      lateInputTranscription: false,
    });
    const summary = plan.steps.map((s) => [Object.keys((s.message.serverContent as object) ?? {})[0], s.waitMs]);
    expect(summary).toEqual([
      ['inputTranscription', 0],
      ['modelTurn', 50],
      ['outputTranscription', 0],
      ['modelTurn', 100],
      ['outputTranscription', 0],
      ['generationComplete', 100],
      ['turnComplete', 0],
    ]);
    expect(plan.audioBytes).toBe(9600);
  });
});
