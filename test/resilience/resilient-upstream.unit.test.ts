/**
 * ResilientUpstream against a scripted fake provider, under jest fake timers: backoff, budget, quick-failure guard,
 * fatal codes, turn-boundary rotation, the silent-server deadline, backlog and replay. Deterministic and fast;
 * the same behaviours are exercised through the real SDK and the emulator in sdk-faults.test.ts.
 */
import { backoffDelay } from '../../src/services/upstream/backoff';
import { describeClose, describeTransportError } from '../../src/services/upstream/close-codes';
import { ResilientUpstream, type ResilienceOptions, type UpstreamFailure } from '../../src/services/upstream/resilient-upstream';
import { UpstreamConnectError, type UpstreamSessionConfig } from '../../src/services/upstream/upstream-types';
import { FakeProvider, frame, frameIds } from './fake-upstream';

const CONFIG: UpstreamSessionConfig = {
  model: 'm',
  responseModality: 'text',
  inputTranscription: true,
  outputTranscription: true,
  sessionResumption: true,
  contextWindowCompression: {},
};

interface Harness {
  p: FakeProvider;
  up: ResilientUpstream;
  events: string[];
  failures: UpstreamFailure[];
}

async function started(opts: Partial<ResilienceOptions> = {}): Promise<Harness> {
  const p = new FakeProvider();
  // random() = 1: every backoff waits its full cap, so the schedule is exact.
  const up = new ResilientUpstream(p, CONFIG, { random: () => 1, ...opts });
  const events: string[] = [];
  const failures: UpstreamFailure[] = [];
  up.on('rotation', (c) => events.push(`rotation:${c}`));
  up.on('connected', (i) => events.push(`connected:${i.connectionNo}`));
  up.on('interrupted', () => events.push('interrupted'));
  up.on('turnComplete', () => events.push('turnComplete'));
  up.on('failed', (f) => {
    events.push('failed');
    failures.push(f);
  });
  await up.start();
  up.startDelivery();
  return { p, up, events, failures };
}

/** Completes a turn on `conn` and hands out a resumable handle. */
function completeTurn(conn: FakeProvider['last'], handle: string): void {
  conn.fire('inputTranscription', 'hi');
  conn.fire('outputTranscription', 'hello');
  conn.fire('turnComplete');
  conn.fire('resumptionUpdate', { handle, resumable: true });
}

const tick = () => jest.advanceTimersByTimeAsync(0);

beforeEach(() => {
  jest.useFakeTimers({ now: 1_000_000 });
});
afterEach(() => {
  jest.useRealTimers();
});

describe('backoff and close classification', () => {
  it('uses full jitter between 0 and min(max, base * 2^n)', () => {
    const caps = [0, 1, 2, 3, 4, 5, 6, 7].map((n) => backoffDelay(n, 250, 8000, () => 1));
    expect(caps).toEqual([250, 500, 1000, 2000, 4000, 8000, 8000, 8000]);
    expect(backoffDelay(3, 250, 8000, () => 0)).toBe(0);
    expect(backoffDelay(3, 250, 8000, () => 0.5)).toBe(1000);
  });

  it('treats 1007, 1008 and quota closes as fatal, 1006 and 1011 as retryable', () => {
    expect(describeClose(1007, 'Request contains an invalid argument.', false)).toMatchObject({ fatal: true });
    expect(describeClose(1008, 'models/x is not found', false)).toMatchObject({ fatal: true });
    expect(describeClose(1011, 'You exceeded your current quota, please check your plan', false)).toMatchObject({ fatal: true });
    expect(describeClose(1011, 'Internal error encountered.', false)).toMatchObject({ fatal: false });
    expect(describeClose(1011, 'Deadline expired before operation could complete.', false)).toMatchObject({ fatal: false });
    expect(describeClose(1011, 'Deadline exceeded', false)).toMatchObject({ fatal: false });
    expect(describeClose(1006, '', false)).toMatchObject({ fatal: false });
    expect(describeTransportError('Unexpected server response: 429')).toMatchObject({ fatal: true });
    expect(describeTransportError('Unexpected server response: 503')).toMatchObject({ fatal: false });
    expect(describeTransportError('connect ECONNREFUSED 127.0.0.1:1')).toMatchObject({ fatal: false });
  });
});

describe('session resumption', () => {
  it('asks for resumption, keeps the latest resumable handle and resumes with it', async () => {
    const { p, up } = await started();
    expect(p.calls[0].config.resumptionHandle).toBeUndefined();
    expect(p.calls[0].config.sessionResumption).toBe(true);
    completeTurn(p.last, 'h1');
    p.last.fire('resumptionUpdate', { resumable: false });
    p.last.fire('resumptionUpdate', { handle: 'h-not-resumable', resumable: false });
    completeTurn(p.last, 'h2');
    p.last.fire('resumptionUpdate', { resumable: false });
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(p.calls).toHaveLength(2);
    expect(p.calls[1].config.resumptionHandle).toBe('h2');
    expect(up.stats()).toMatchObject({ state: 'open', connections: 2, reconnects: 1, hasResumptionHandle: true });
    up.close();
  });
});

describe('messages that arrive with the setup', () => {
  it('are held until startDelivery(), then passed on in order: nothing is lost to late listeners', async () => {
    const p = new FakeProvider();
    // What a busy server sends in the same read as setupComplete: a handle, the model's first words.
    p.onSetup = (conn) => {
      conn.fire('resumptionUpdate', { handle: 'h0', resumable: true });
      conn.fire('outputTranscription', 'Hello,');
      conn.fire('outputTranscription', ' I am listening.');
      conn.fire('turnComplete');
    };
    const up = new ResilientUpstream(p, CONFIG, { random: () => 1 });
    await up.start();
    await tick(); // listeners attached well after connect() resolved
    const seen: string[] = [];
    up.on('outputTranscription', (t) => seen.push(t));
    up.on('turnComplete', () => seen.push('turnComplete'));
    expect(seen).toEqual([]);
    up.startDelivery();
    expect(seen).toEqual(['Hello,', ' I am listening.', 'turnComplete']);
    expect(up.stats().hasResumptionHandle).toBe(true);
    // The first handle is used at the first reconnect.
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(p.calls[1].config.resumptionHandle).toBe('h0');
    up.close();
  });

  it('a reconnect\'s setup messages (a goAway at once) are heard while the rotation is being wired', async () => {
    const { p, up, events } = await started();
    completeTurn(p.last, 'h1');
    p.onSetup = (conn) => {
      if (conn.id !== 'f2') return;
      conn.fire('resumptionUpdate', { handle: 'h2', resumable: true });
      conn.fire('goAway', 10_000);
    };
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    // f2 was sent away with its setup and the link was idle: it rotated at once, resuming with f2's own handle.
    await tick();
    expect(p.calls.map((c) => c.config.resumptionHandle)).toEqual([undefined, 'h1', 'h2']);
    expect(events.filter((e) => e.startsWith('rotation'))).toEqual(['rotation:unexpected_close', 'rotation:go_away']);
    up.close();
  });

  it('a close that came with the setup is delivered after the held messages', async () => {
    const p = new FakeProvider();
    p.onSetup = (conn) => {
      if (conn.id !== 'f1') return;
      conn.fire('resumptionUpdate', { handle: 'h0', resumable: true });
      conn.serverClose(1011, 'Internal error encountered.');
    };
    const up = new ResilientUpstream(p, CONFIG, { random: () => 1 });
    await up.start();
    up.startDelivery();
    expect(up.state).toBe('reconnecting');
    await jest.advanceTimersByTimeAsync(250);
    expect(p.calls[1].config.resumptionHandle).toBe('h0');
    expect(up.stats()).toMatchObject({ state: 'open', reconnects: 1, resumedReconnects: 1, freshReconnects: 0 });
    up.close();
  });
});

describe('what the stats say about a reconnect', () => {
  it('a reconnect without a handle is reported as fresh (the model lost the conversation), not as resumed', async () => {
    const { p, up } = await started();
    const connected: { resumed: boolean; reconnect: boolean }[] = [];
    up.on('connected', (i) => connected.push({ resumed: i.resumed, reconnect: i.reconnect }));
    p.last.serverClose(1006); // no handle yet
    await jest.advanceTimersByTimeAsync(250);
    expect(up.stats()).toMatchObject({ reconnects: 1, resumedReconnects: 0, freshReconnects: 1, lastReconnect: { resumed: false, connectionNo: 2 } });
    completeTurn(p.last, 'h1');
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(up.stats()).toMatchObject({ reconnects: 2, resumedReconnects: 1, freshReconnects: 1, lastReconnect: { resumed: true, connectionNo: 3 } });
    expect(connected).toEqual([
      { resumed: false, reconnect: true },
      { resumed: true, reconnect: true },
    ]);
    up.close();
  });

  it('a handle refused with 1007 and a fresh session instead is reported as fresh', async () => {
    const { p, up } = await started();
    completeTurn(p.last, 'h1');
    p.script.push({ fail: new UpstreamConnectError('Gemini rejected the request (1007): invalid handle', true, 1007, 'invalid handle') });
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(p.calls.map((c) => c.config.resumptionHandle)).toEqual([undefined, 'h1', undefined]);
    expect(up.stats()).toMatchObject({ state: 'open', reconnects: 1, resumedReconnects: 0, freshReconnects: 1, hasResumptionHandle: false });
    up.close();
  });
});

describe('reconnect on unexpected close', () => {
  it('backs off (250 ms first), buffers audio meanwhile and sends it in order', async () => {
    const { p, up, events } = await started();
    up.sendAudio(frame(1));
    const first = p.last;
    first.serverClose(1011, 'Internal error encountered.');
    expect(up.state).toBe('reconnecting');
    up.sendAudio(frame(2));
    up.sendAudio(frame(3));
    await jest.advanceTimersByTimeAsync(249);
    expect(p.calls).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(p.calls).toHaveLength(2);
    up.sendAudio(frame(4));
    expect(frameIds(first.audio)).toEqual([1]);
    expect(frameIds(p.last.audio)).toEqual([2, 3, 4]);
    expect(events).toEqual(['connected:1', 'rotation:unexpected_close', 'connected:2']);
    expect(up.stats()).toMatchObject({
      reconnects: 1,
      rotations: 1,
      lastRotation: { cause: 'unexpected_close' },
      lastClose: { code: 1011, reason: 'Internal error encountered.' },
      droppedAudioMs: 0,
      bufferedAudioMs: 0,
      sentAudioMs: 400,
    });
    up.close();
  });

  it('retries with exponential backoff within the budget, then fails with the last error and leaves no timer', async () => {
    const { p, up, failures } = await started({ reconnectBudgetMs: 5_000 });
    const t0 = Date.now();
    for (let i = 0; i < 10; i++) p.script.push({ fail: new UpstreamConnectError('Gemini handshake failed (HTTP 503)', false) });
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(10_000);
    const offsets = p.calls.slice(1).map((c) => c.at - t0);
    // Waits 250, 500, 1000, 2000, then only what is left of the 5 s budget.
    expect(offsets).toEqual([250, 750, 1750, 3750]);
    expect(up.state).toBe('failed');
    expect(failures[0].description).toBe('could not reconnect to Gemini within 5000 ms (last error: Gemini handshake failed (HTTP 503))');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('abandons a connection attempt that outlives the budget', async () => {
    const { p, up, failures } = await started({ reconnectBudgetMs: 2_000 });
    p.script.push('hang');
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(2_000);
    expect(p.aborted).toBe(1);
    expect(up.state).toBe('failed');
    expect(failures[0].description).toMatch(/within 2000 ms/);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('fails after three connections that each lived under 5 s (quick-failure guard)', async () => {
    const { p, up, failures } = await started();
    for (let i = 0; i < 3; i++) {
      await jest.advanceTimersByTimeAsync(1_000); // each connection lives 1 s
      p.last.serverClose(1011, 'Internal error encountered.');
      await jest.advanceTimersByTimeAsync(250 * 2 ** i); // the backoff, growing while failures continue
    }
    await jest.advanceTimersByTimeAsync(60_000);
    expect(p.calls).toHaveLength(3);
    expect(up.state).toBe('failed');
    expect(failures[0].description).toMatch(/3 times in a row within 5000 ms of connecting \(last: Gemini ended the connection \(1011\): Internal error encountered\.\)/);
    expect(failures[0].code).toBe(1011);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('resets the quick-failure count after a connection that lived long enough', async () => {
    const { p, up } = await started();
    for (const lifeMs of [1_000, 1_000, 6_000, 1_000, 1_000]) {
      await jest.advanceTimersByTimeAsync(lifeMs);
      p.last.serverClose(1006);
      await jest.advanceTimersByTimeAsync(300);
    }
    expect(up.state).toBe('open');
    expect(p.calls).toHaveLength(6);
    up.close();
  });

  it.each([
    [1007, 'Request contains an invalid argument.'],
    [1008, 'models/x is not found for API version v1beta'],
    [1011, 'You exceeded your current quota, please check your plan and billing details.'],
  ])('fails at once on close %i, passing on the reason', async (code, reason) => {
    const { p, up, failures } = await started();
    up.sendAudio(frame(1));
    p.last.serverClose(code, reason);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(p.calls).toHaveLength(1);
    expect(up.state).toBe('failed');
    expect(failures[0]).toMatchObject({ code, reason });
    expect(failures[0].description).toContain(reason);
    expect(up.stats().failure).toEqual(failures[0]);
    expect(jest.getTimerCount()).toBe(0);
  });

  it('fails at once when the reconnect handshake gets HTTP 429', async () => {
    const { p, failures } = await started();
    p.script.push({ fail: new UpstreamConnectError('Gemini quota exceeded (HTTP 429 at connect)', true) });
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(p.calls).toHaveLength(2);
    expect(failures[0].description).toMatch(/429/);
  });

  it('retries once without the handle when the resume is refused with 1007, then gives up', async () => {
    const { p, up, failures } = await started();
    completeTurn(p.last, 'h1');
    const refused = () => new UpstreamConnectError('Gemini rejected the request (1007): invalid handle', true, 1007, 'invalid handle');
    p.script.push({ fail: refused() });
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(p.calls.map((c) => c.config.resumptionHandle)).toEqual([undefined, 'h1', undefined]);
    expect(up.state).toBe('open');

    p.last.fire('resumptionUpdate', { handle: 'h2', resumable: true });
    p.script.push({ fail: refused() }, { fail: refused() });
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(60_000);
    expect(p.calls.map((c) => c.config.resumptionHandle)).toEqual([undefined, 'h1', undefined, 'h2', undefined]);
    expect(up.state).toBe('failed');
    expect(failures[0]).toMatchObject({ code: 1007, reason: 'invalid handle' });
  });

  it('marks a reply cut by a drop as interrupted and complete, and keeps user words of an unanswered turn open', async () => {
    const { p, up, events } = await started();
    p.last.fire('inputTranscription', 'hello');
    p.last.fire('outputTranscription', 'Hi, how');
    p.last.serverClose(1006);
    expect(events.slice(-3)).toEqual(['rotation:unexpected_close', 'interrupted', 'turnComplete']);
    await jest.advanceTimersByTimeAsync(250);
    events.length = 0;
    p.last.fire('inputTranscription', 'only words so far');
    p.last.serverClose(1006);
    expect(events).toEqual(['rotation:unexpected_close']);
    up.close();
  });

  it('ignores events of a connection it has left', async () => {
    const { p, up } = await started();
    const first = p.last;
    const seen: string[] = [];
    up.on('outputTranscription', (t) => seen.push(t));
    first.fire('goAway', 10_000);
    await tick();
    first.fire('outputTranscription', 'late');
    expect(seen).toEqual([]);
    p.last.fire('outputTranscription', 'new');
    expect(seen).toEqual(['new']);
    up.close();
  });
});

describe('goAway rotation', () => {
  it('rotates at once when idle: closes the old connection first, then resumes with the handle', async () => {
    const { p, up, events } = await started();
    completeTurn(p.last, 'h1');
    await jest.advanceTimersByTimeAsync(5_000);
    const first = p.last;
    first.fire('goAway', 50_000);
    await tick();
    expect(p.events).toEqual(['connect#1', 'close:f1', 'connect#2']);
    expect(first.isClosed).toBe(true);
    expect(p.calls[1].config.resumptionHandle).toBe('h1');
    expect(events).toContain('rotation:go_away');
    expect(up.stats()).toMatchObject({ state: 'open', connections: 2, reconnects: 1, lastClose: null });
    up.close();
  });

  it('waits for the turn boundary and the turn\'s handle when a reply is in progress', async () => {
    const { p, up, events } = await started();
    completeTurn(p.last, 'h1');
    await jest.advanceTimersByTimeAsync(5_000);
    p.last.fire('inputTranscription', 'next question');
    p.last.fire('modelAudio', Buffer.alloc(4800), 24000);
    p.last.fire('goAway', 50_000);
    await jest.advanceTimersByTimeAsync(3_000);
    expect(p.calls).toHaveLength(1);
    p.last.fire('outputTranscription', 'answer');
    p.last.fire('turnComplete');
    await jest.advanceTimersByTimeAsync(100);
    expect(p.calls).toHaveLength(1); // waiting for the handle of this turn
    p.last.fire('resumptionUpdate', { handle: 'h2', resumable: true });
    await tick();
    expect(p.calls).toHaveLength(2);
    expect(p.calls[1].config.resumptionHandle).toBe('h2');
    expect(events).not.toContain('interrupted');
    up.close();
  });

  it('rotates after handleWaitMs when no handle follows the turn', async () => {
    const { p, up } = await started({ handleWaitMs: 400 });
    completeTurn(p.last, 'h1');
    p.last.fire('outputTranscription', 'talking');
    p.last.fire('goAway', 50_000);
    p.last.fire('turnComplete');
    await jest.advanceTimersByTimeAsync(399);
    expect(p.calls).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(p.calls).toHaveLength(2);
    expect(p.calls[1].config.resumptionHandle).toBe('h1');
    up.close();
  });

  it('does not wait on a server that went silent: rotates before timeLeft runs out and cuts the reply', async () => {
    const { p, up, events } = await started();
    completeTurn(p.last, 'h1');
    p.last.fire('outputTranscription', 'half a rep');
    p.last.fire('goAway', 10_000);
    await jest.advanceTimersByTimeAsync(7_999);
    expect(p.calls).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(p.calls).toHaveLength(2);
    expect(events).toEqual(expect.arrayContaining(['rotation:go_away_deadline', 'interrupted', 'turnComplete']));
    expect(up.stats().lastRotation?.cause).toBe('go_away_deadline');
    up.close();
  });

  it('keeps half of a short timeLeft as margin', async () => {
    const { p, up } = await started();
    up.sendAudio(frame(1)); // the user is streaming: wait for a boundary
    p.last.fire('goAway', 1_000);
    await jest.advanceTimersByTimeAsync(499);
    expect(p.calls).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(p.calls).toHaveLength(2);
    up.close();
  });

  it('waits for a boundary while the user streams audio, rotating at the next turnComplete', async () => {
    const { p, up } = await started();
    completeTurn(p.last, 'h1');
    up.sendAudio(frame(1));
    p.last.fire('goAway', 50_000);
    await jest.advanceTimersByTimeAsync(2_000);
    expect(p.calls).toHaveLength(1);
    up.sendAudio(frame(2));
    completeTurn(p.last, 'h2');
    await tick();
    expect(p.calls).toHaveLength(2);
    expect(p.calls[1].config.resumptionHandle).toBe('h2');
    expect(frameIds(p.connections[0].audio)).toEqual([1, 2]);
    up.close();
  });

  it('resumes at once (no backoff) when the server closes after its goAway', async () => {
    const { p, up, events } = await started();
    up.sendAudio(frame(1));
    await jest.advanceTimersByTimeAsync(6_000);
    up.sendAudio(frame(2));
    p.last.fire('goAway', 10_000);
    p.last.serverClose(1011, 'Deadline expired before operation could complete.');
    await tick();
    expect(p.calls).toHaveLength(2);
    expect(events).toContain('rotation:go_away_deadline');
    up.close();
  });

  it('holds audio during the rotation and sends it in order; nothing is resent after a confirmed close', async () => {
    const { p, up } = await started();
    p.last.autoAck = false; // even unconfirmed audio is not resent: our close, answered, confirms it all
    p.last.fire('goAway', 50_000); // idle: the rotation starts at once
    up.sendAudio(frame(9));
    await tick();
    for (let i = 10; i < 13; i++) up.sendAudio(frame(i));
    const all = p.connections.flatMap((c) => frameIds(c.audio));
    expect(all).toEqual([9, 10, 11, 12]);
    expect(up.stats().replayedAudioMs).toBe(0);
    up.close();
  });

  it('bounds rotation loops: connections sent away right after connecting count as quick failures', async () => {
    const { p, up, failures } = await started();
    for (let i = 0; i < 5; i++) {
      p.last?.fire('goAway', 100);
      await jest.advanceTimersByTimeAsync(200);
    }
    expect(up.state).toBe('failed');
    expect(p.calls).toHaveLength(3);
    expect(failures[0].description).toMatch(/sent away \(goAway\)/);
  });
});

describe('no audio lost', () => {
  it('resends audio the server did not confirm before a drop, first and in order', async () => {
    const { p, up } = await started();
    let sentEvents = 0;
    up.on('audioSent', (n) => (sentEvents += n));
    up.sendAudio(frame(1));
    up.sendAudio(frame(2));
    const first = p.last;
    first.deadSocket = true; // the network died; the next frames vanish but nobody knows yet
    up.sendAudio(frame(3));
    up.sendAudio(frame(4));
    first.serverClose(1006);
    up.sendAudio(frame(5));
    await jest.advanceTimersByTimeAsync(250);
    up.sendAudio(frame(6));
    expect(frameIds(first.audio)).toEqual([1, 2]);
    expect(frameIds(p.last.audio)).toEqual([3, 4, 5, 6]);
    expect(up.stats().replayedAudioMs).toBe(200);
    // Resent audio is neither counted nor reported (charged) twice.
    expect(up.stats().sentAudioMs).toBe(600);
    expect(sentEvents).toBe(600 * 32);
    up.close();
  });

  it('resends only what was sent in the last replayMs when the transport confirms nothing', async () => {
    const { p, up } = await started({ replayMs: 200 });
    p.last.acked = undefined;
    for (let i = 1; i <= 3; i++) up.sendAudio(frame(i));
    await jest.advanceTimersByTimeAsync(300);
    // A burst (a whole decoded chunk) just before the drop: all of it is within the window.
    for (let i = 4; i <= 8; i++) up.sendAudio(frame(i));
    await jest.advanceTimersByTimeAsync(150);
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(frameIds(p.last.audio)).toEqual([4, 5, 6, 7, 8]);
    expect(up.stats().replayedAudioMs).toBe(500);
    up.close();
  });

  it('resends nothing the transport confirmed, however recent', async () => {
    const { p, up } = await started({ replayMs: 200 });
    for (let i = 1; i <= 3; i++) up.sendAudio(frame(i));
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(p.last.audio).toHaveLength(0);
    expect(up.stats().replayedAudioMs).toBe(0);
    up.close();
  });

  it('resends nothing with replayMs 0', async () => {
    const { p, up } = await started({ replayMs: 0 });
    p.last.acked = undefined;
    up.sendAudio(frame(1));
    p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(p.last.audio).toHaveLength(0);
    expect(up.stats().replayedAudioMs).toBe(0);
    up.close();
  });

  it('resends unconfirmed audio when the old connection does not answer our close', async () => {
    const { p, up } = await started({ closeWaitMs: 300 });
    const first = p.last;
    first.echoClose = false;
    first.autoAck = false;
    up.sendAudio(frame(1));
    first.fire('outputTranscription', 'reply');
    first.fire('goAway', 50_000);
    await jest.advanceTimersByTimeAsync(1_000);
    up.sendAudio(frame(2));
    first.fire('turnComplete');
    first.fire('resumptionUpdate', { handle: 'h1', resumable: true }); // the boundary: rotation starts now
    await jest.advanceTimersByTimeAsync(299);
    expect(p.calls).toHaveLength(1);
    await jest.advanceTimersByTimeAsync(1);
    expect(p.calls).toHaveLength(2);
    // Frame 2 was sent just before the rotation and never confirmed; frame 1 is older than the window.
    expect(frameIds(p.last.audio)).toEqual([2]);
    up.close();
  });

  it('counts backlog overflow (oldest audio first) and reports it on the stats', async () => {
    const { p, up } = await started({ backlogMs: 1_000 });
    p.script.push({ fail: new UpstreamConnectError('down', false) });
    p.last.serverClose(1006);
    for (let i = 1; i <= 15; i++) up.sendAudio(frame(i));
    expect(up.stats()).toMatchObject({ bufferedAudioMs: 1_000, droppedAudioMs: 500 });
    await jest.advanceTimersByTimeAsync(250 + 500);
    expect(frameIds(p.last.audio)).toEqual([6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    expect(up.stats()).toMatchObject({ bufferedAudioMs: 0, droppedAudioMs: 500 });
    up.close();
  });

  it('counts audio still waiting when the link fails as dropped', async () => {
    const { p, up } = await started();
    p.script.push({ fail: new UpstreamConnectError('quota', true) });
    p.last.serverClose(1006);
    up.sendAudio(frame(1));
    up.sendAudio(frame(2));
    await jest.advanceTimersByTimeAsync(250);
    expect(up.state).toBe('failed');
    expect(up.stats().droppedAudioMs).toBe(200);
  });

  it('delivers typed text and a stream end that arrived while down, after the audio', async () => {
    const { p, up } = await started();
    p.last.serverClose(1006);
    up.sendAudio(frame(1));
    up.sendText('typed while down');
    up.sendAudioStreamEnd();
    await jest.advanceTimersByTimeAsync(250);
    expect(frameIds(p.last.audio)).toEqual([1]);
    expect(p.last.texts).toEqual(['typed while down']);
    expect(p.last.streamEnds).toBe(1);
    up.close();
  });
});

describe('closing', () => {
  it('close() during the backoff or a pending attempt stops everything and leaves no timer', async () => {
    const { p, up } = await started();
    p.last.serverClose(1006);
    up.close();
    await jest.advanceTimersByTimeAsync(60_000);
    expect(p.calls).toHaveLength(1);
    expect(jest.getTimerCount()).toBe(0);

    const h = await started();
    h.p.script.push('hang');
    h.p.last.serverClose(1006);
    await jest.advanceTimersByTimeAsync(250);
    expect(h.p.calls).toHaveLength(2);
    h.up.close();
    await tick();
    expect(h.p.aborted).toBe(1);
    expect(h.up.state).toBe('closed');
    expect(jest.getTimerCount()).toBe(0);
  });

  it('close() while waiting for the old connection to close leaves no timer', async () => {
    const { p, up } = await started();
    p.last.echoClose = false;
    p.last.fire('goAway', 50_000); // idle: rotates at once and waits (closeWaitMs) for the close
    await tick();
    expect(up.state).toBe('rotating');
    up.close();
    await tick();
    expect(jest.getTimerCount()).toBe(0);
    expect(p.calls).toHaveLength(1);
  });

  it('close() during a goAway wait clears the deadline timer', async () => {
    const { p, up } = await started();
    p.last.fire('outputTranscription', 'x');
    p.last.fire('goAway', 50_000);
    expect(jest.getTimerCount()).toBe(1);
    up.close();
    await tick(); // the fake's close echo is a (faked) microtask
    expect(jest.getTimerCount()).toBe(0);
    expect(p.last.closeCalls).toBe(1);
  });
});
