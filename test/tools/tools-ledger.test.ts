/**
 * The session's tool-call ledger and the setup's tool resolution, without a network: states, all-or-nothing
 * answers, the pending bound, timeouts grouped per batch, fresh-session drops, and profiles carrying tools.
 */
import { LiveModelTable } from '../../src/services/models';
import { parseProfilesText } from '../../src/services/profiles/profile-file';
import { buildLiveConnectConfig, parseSessionOptions, resolveSessionSetup } from '../../src/services/session-setup';
import { ToolCallLedger } from '../../src/services/tools/tool-call-ledger';
import { isAppError } from '../../src/util/app-error';

const limits = { timeoutMs: 50, maxPending: 3, maxResponseBytes: 100 };
const behaviors = new Map([
  ['a', 'non_blocking' as const],
  ['b', 'blocking' as const],
]);
const codeOf = (f: () => unknown): string => {
  try {
    f();
    return 'none';
  } catch (e) {
    return isAppError(e) ? `${e.status} ${e.code}` : String(e);
  }
};

describe('ToolCallLedger', () => {
  it('answers are all-or-nothing, fill in names, pass scheduling only for non-blocking functions', () => {
    const l = new ToolCallLedger(limits, behaviors);
    l.asked([{ id: '1', name: 'a', args: {} }, { id: '2', name: 'b', args: {} }], 1);
    // One bad id in the request: nothing is answered.
    expect(codeOf(() => l.answer([{ id: '1', response: {} }, { id: 'x', response: {} }]))).toBe('409 TOOL_CALL_UNKNOWN');
    expect(l.pending().map((c) => c.id)).toEqual(['1', '2']);
    expect(codeOf(() => l.answer([{ id: '1', response: { o: 'x'.repeat(200) } }]))).toBe('413 TOOL_RESPONSE_TOO_LARGE');
    expect(codeOf(() => l.answer([{ id: '1', response: {} }, { id: '1', response: {} }]))).toBe('400 INVALID_FIELD');
    const out = l.answer([{ id: '1', response: { ok: 1 }, scheduling: 'silent' }, { id: '2', response: {}, scheduling: 'interrupt' }]);
    expect(out).toEqual([
      { id: '1', name: 'a', response: { ok: 1 }, scheduling: 'silent' },
      { id: '2', name: 'b', response: {} },
    ]);
    expect(codeOf(() => l.answer([{ id: '1', response: {} }]))).toBe('409 TOOL_CALL_NOT_PENDING');
    l.close();
  });

  it('a repeated toolCall (delivered twice) is ignored; calls beyond the pending bound are answered with an error at once', () => {
    const l = new ToolCallLedger(limits, behaviors);
    const called: string[][] = [];
    const overflow: string[][] = [];
    l.on('called', (c) => called.push(c.map((x) => x.id)));
    l.on('overflow', (a) => overflow.push(a.map((x) => x.id)));
    l.asked([{ id: '1', name: 'a', args: {} }], 1);
    l.asked([{ id: '1', name: 'a', args: {} }], 1);
    l.asked(['2', '3', '4', '5'].map((id) => ({ id, name: 'a', args: {} })), 1);
    expect(called).toEqual([['1'], ['2', '3']]);
    expect(overflow).toEqual([['4', '5']]);
    expect(l.get('4')!.state).toBe('timed_out');
    l.close();
  });

  it('times out a batch as one answer; cancellations and fresh-session drops settle only pending calls', async () => {
    const l = new ToolCallLedger({ ...limits, timeoutMs: 30 }, behaviors);
    const timed: string[][] = [];
    const withdrawn: [string[], string][] = [];
    l.on('timedOut', (a) => timed.push(a.map((x) => x.id)));
    l.on('withdrawn', (ids, why) => withdrawn.push([ids, why]));
    l.asked([{ id: '1', name: 'a', args: {} }, { id: '2', name: 'a', args: {} }], 1);
    // Wait for the timer (a condition, not a fixed sleep: a loaded machine fires it late).
    for (let i = 0; i < 500 && timed.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(timed).toEqual([['1', '2']]);
    l.asked([{ id: '3', name: 'a', args: {} }], 1);
    l.asked([{ id: '4', name: 'a', args: {} }], 2);
    l.cancelled(['3', '1', 'zz']);
    l.freshSessionFrom(3);
    expect(withdrawn).toEqual([
      [['3'], 'cancelled'],
      [['4'], 'dropped'],
    ]);
    l.close();
  });
});

describe('tools in the session setup', () => {
  const table = new LiveModelTable();
  it('a profile may carry tools; a model without function calling leaves them out as not applied', () => {
    const [p] = parseProfilesText(
      JSON.stringify({ profiles: { helper: { tools: [{ name: 'get_time' }], google_search: true, locked: ['tools'] } } }),
      'p.json',
      table,
    );
    const opts = parseSessionOptions({ profile: 'helper' });
    if (!opts.ok) throw new Error('options');
    const on38 = resolveSessionSetup(opts.value, p, table);
    if (!on38.ok) throw new Error(JSON.stringify(on38.problem));
    expect(on38.setup.tools).toEqual([{ name: 'get_time', effectiveBehavior: 'non_blocking' }]);
    expect(buildLiveConnectConfig(on38.setup).tools).toEqual([{ functionDeclarations: [{ name: 'get_time' }] }, { googleSearch: {} }]);
    const onTranscribe = resolveSessionSetup({ ...opts.value, model: 'gemini-3.5-transcribe-live' }, p, table);
    if (!onTranscribe.ok) throw new Error(JSON.stringify(onTranscribe.problem));
    expect(onTranscribe.setup.tools).toBeUndefined();
    expect(onTranscribe.echo.not_applied.map((n) => n.field)).toEqual(expect.arrayContaining(['tools', 'google_search']));
    // Locked: a request may not bring its own tools.
    const locked = parseSessionOptions({ profile: 'helper', tools: [{ name: 'other' }] });
    if (!locked.ok) throw new Error('options');
    const r = resolveSessionSetup(locked.value, p, table);
    expect(r.ok ? 'ok' : r.problem.code).toBe('PROFILE_LOCKED');
  });
});
