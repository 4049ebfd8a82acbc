/**
 * The emulator's two timings (src/emulator/timing.ts) as a client sees them on the wire, TCP read by TCP read,
 * and what it keeps in memory under each retention (src/emulator/connection-records.ts).
 */
import type { ClientRequestArgs } from 'node:http';
import net from 'node:net';
import { WebSocket } from 'ws';
import {
  DEMO_RETENTION,
  scriptedScenario,
  startGeminiLiveEmulator,
  type EmulatorOptions,
  type EmulatorTiming,
  type GeminiLiveEmulator,
} from '../../src/emulator';
import { utterancePcm } from '../helpers/live-probe';
import { LIVE_PATH, NATIVE_AUDIO_MODEL } from './helpers';

const SETUP = {
  setup: {
    model: `models/${NATIVE_AUDIO_MODEL}`,
    generationConfig: { responseModalities: ['AUDIO'] },
    outputAudioTranscription: {},
    sessionResumption: {},
  },
};

interface Arrival {
  /** Which TCP read (socket `data` event) delivered the message. */
  read: number;
  at: number;
  msg: any;
}

/** A bare client that numbers the TCP reads under its WebSocket, to see which messages travelled together. */
class ReadCountingClient {
  readonly arrivals: Arrival[] = [];
  private reads = 0;
  readonly ws: WebSocket;
  readonly opened: Promise<void>;

  constructor(emu: GeminiLiveEmulator, key = 'test-key') {
    this.ws = new WebSocket(`ws://127.0.0.1:${emu.port}${LIVE_PATH}?key=${key}`, {
      // Our 'data' listener is added before the one of `ws`, so it counts a read before its frames are parsed.
      createConnection: (opts: ClientRequestArgs) => {
        const socket = net.connect(opts as net.NetConnectOpts);
        socket.on('data', () => this.reads++);
        return socket;
      },
    });
    this.ws.on('message', (data) => this.arrivals.push({ read: this.reads, at: Date.now(), msg: JSON.parse(data.toString()) }));
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
    });
  }

  send(msg: unknown): void {
    this.ws.send(JSON.stringify(msg));
  }

  sendPcm(pcm: Buffer): void {
    for (let off = 0; off < pcm.length; off += 3200) {
      const data = pcm.subarray(off, off + 3200).toString('base64');
      this.send({ realtimeInput: { audio: { data, mimeType: 'audio/pcm;rate=16000' } } });
    }
  }

  /** The index of the first arrival matching `pred`, waiting up to `ms`. */
  async waitFor(pred: (m: any) => boolean, ms = 3000): Promise<number> {
    const deadline = Date.now() + ms;
    for (;;) {
      const i = this.arrivals.findIndex((a) => pred(a.msg));
      if (i >= 0) return i;
      if (Date.now() > deadline) throw new Error(`no matching message within ${ms} ms; got ${this.arrivals.map((a) => kindOf(a.msg)).join(', ')}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  /** The top-level kinds of the messages that arrived in the same read as arrival `i`. */
  sameRead(i: number): string[] {
    const read = this.arrivals[i].read;
    return this.arrivals.filter((a) => a.read === read).map((a) => kindOf(a.msg));
  }

  close(): void {
    this.ws.close();
  }
}

/** `setupComplete`, `modelTurn`, `turnComplete+usageMetadata`, ... */
function kindOf(msg: any): string {
  const { serverContent, ...rest } = msg;
  return [...Object.keys(serverContent ?? {}), ...Object.keys(rest)].join('+');
}

async function withEmulator(opts: EmulatorOptions, fn: (emu: GeminiLiveEmulator) => Promise<void>): Promise<void> {
  const emu = await startGeminiLiveEmulator(opts);
  try {
    await fn(emu);
  } finally {
    await emu.stop();
  }
}

async function setUp(emu: GeminiLiveEmulator, setup: unknown = SETUP): Promise<ReadCountingClient> {
  const c = new ReadCountingClient(emu);
  await c.opened;
  c.send(setup);
  await c.waitFor((m) => m.setupComplete);
  return c;
}

const settle = (ms = 100) => new Promise((r) => setTimeout(r, ms));

describe('eager timing', () => {
  it('sends a resumable handle and the setup usage in the same TCP read as setupComplete', async () => {
    await withEmulator({ timing: 'eager' }, async (emu) => {
      const c = await setUp(emu);
      await c.waitFor((m) => m.usageMetadata);
      expect(c.sameRead(0)).toEqual(['setupComplete', 'sessionResumptionUpdate', 'usageMetadata']);
      expect(c.arrivals[1].msg.sessionResumptionUpdate).toEqual({ newHandle: 'emu-c1-1', resumable: true });
      expect(c.arrivals[2].msg.usageMetadata.totalTokenCount).toBeGreaterThan(0);
      expect(emu.connections[0].handles).toEqual(['emu-c1-1']);
      c.close();
    });
  });

  it('without sessionResumption in the setup there is no handle, only the usage', async () => {
    await withEmulator({ timing: 'eager' }, async (emu) => {
      const c = await setUp(emu, { setup: { model: `models/${NATIVE_AUDIO_MODEL}` } });
      await c.waitFor((m) => m.usageMetadata);
      expect(c.sameRead(0)).toEqual(['setupComplete', 'usageMetadata']);
      c.close();
    });
  });

  it('sends a goAway due at setup in the same read as setupComplete', async () => {
    await withEmulator({ timing: 'eager', faults: { goAwayAfterMs: 0, goAwayTimeLeftMs: 5_000 } }, async (emu) => {
      const c = await setUp(emu);
      await c.waitFor((m) => m.goAway);
      expect(c.sameRead(0)).toEqual(['setupComplete', 'sessionResumptionUpdate', 'usageMetadata', 'goAway']);
      c.close();
    });
  });

  it('coalesces the end of a reply: last audio, generationComplete, turnComplete + usage and the handle in one read', async () => {
    const scenario = scriptedScenario([], { fallback: { userTranscript: 'hi', reply: 'Hello there.', replyAudioMs: 300 }, pacing: 'realtime' });
    await withEmulator({ timing: 'eager', scenario }, async (emu) => {
      const c = await setUp(emu);
      c.sendPcm(utterancePcm(400, 700));
      const end = await c.waitFor((m) => m.serverContent?.turnComplete);
      await c.waitFor((m) => m.sessionResumptionUpdate?.newHandle === 'emu-c1-2');
      const read = c.sameRead(end);
      expect(read).toContain('modelTurn');
      expect(read.slice(read.indexOf('generationComplete'))).toEqual(['generationComplete', 'turnComplete+usageMetadata', 'sessionResumptionUpdate']);
      c.close();
    });
  });

  it('the model speaks first (scenario.opening) in the same read as setupComplete, and not again on resume', async () => {
    const scenario = scriptedScenario([], { opening: { reply: 'Welcome, tell me about yourself.', replyAudioMs: 200 } });
    await withEmulator({ timing: 'eager', scenario }, async (emu) => {
      const c = await setUp(emu);
      await c.waitFor((m) => m.serverContent?.turnComplete);
      const first = c.sameRead(0);
      expect(first.slice(0, 3)).toEqual(['setupComplete', 'sessionResumptionUpdate', 'usageMetadata']);
      expect(first).toContain('modelTurn');
      expect(first).toContain('turnComplete+usageMetadata');
      const words = c.arrivals.map((a) => a.msg.serverContent?.outputTranscription?.text ?? '').join('');
      expect(words).toBe('Welcome, tell me about yourself.');
      const handle = c.arrivals.filter((a) => a.msg.sessionResumptionUpdate).at(-1)!.msg.sessionResumptionUpdate.newHandle;
      c.close();

      const resumed = await setUp(emu, { setup: { ...SETUP.setup, sessionResumption: { handle } } });
      await settle(150);
      expect(resumed.arrivals.map((a) => kindOf(a.msg))).toEqual(['setupComplete', 'sessionResumptionUpdate', 'usageMetadata']);
      resumed.close();
    });
  });
});

describe('spaced timing (the default)', () => {
  it('sends setupComplete alone; the first handle only after a turn', async () => {
    await withEmulator({}, async (emu) => {
      const c = await setUp(emu);
      await settle();
      expect(c.arrivals.map((a) => kindOf(a.msg))).toEqual(['setupComplete']);
      c.sendPcm(utterancePcm(400, 700));
      await c.waitFor((m) => m.sessionResumptionUpdate);
      expect(c.arrivals.filter((a) => a.msg.sessionResumptionUpdate).map((a) => a.msg.sessionResumptionUpdate.newHandle)).toEqual(['emu-c1-1']);
      c.close();
    });
  });

  it('the opening comes in a later read than setupComplete', async () => {
    const scenario = scriptedScenario([], { opening: { reply: 'Welcome.', replyAudioMs: 100 } });
    await withEmulator({ scenario }, async (emu) => {
      const c = await setUp(emu);
      const firstContent = await c.waitFor((m) => m.serverContent?.modelTurn);
      expect(c.sameRead(0)).toEqual(['setupComplete']);
      expect(c.arrivals[firstContent].read).toBeGreaterThan(c.arrivals[0].read);
      expect(c.arrivals[firstContent].at - c.arrivals[0].at).toBeGreaterThanOrEqual(40);
      c.close();
    });
  });
});

describe('retention', () => {
  async function streamOnce(emu: GeminiLiveEmulator, timing: EmulatorTiming): Promise<void> {
    const c = await setUp(emu);
    c.sendPcm(utterancePcm(400, 700));
    await c.waitFor((m) => m.serverContent?.turnComplete);
    // The turn's handle (with eager timing the second one: the first came with setupComplete).
    const handles = timing === 'eager' ? 2 : 1;
    await c.waitFor(() => c.arrivals.filter((a) => a.msg.sessionResumptionUpdate).length === handles);
    const closed = new Promise((r) => c.ws.once('close', r));
    c.close();
    await closed;
  }

  it('full (tests): every PCM byte, message logs and record', async () => {
    await withEmulator({}, async (emu) => {
      await streamOnce(emu, 'spaced');
      await emu.waitFor(() => emu.retained().openConnections === 0);
      const r = emu.retained();
      expect(r.pcmBytes).toBe(utterancePcm(400, 700).length); // in the record and receivedPcm(): the same buffers
      expect(emu.receivedPcm().equals(utterancePcm(400, 700))).toBe(true);
      expect(r.messageLogEntries).toBeGreaterThan(10);
      expect(r).toMatchObject({ connectionRecords: 1, upgradeRecords: 1, resumptionHandles: 1 });
    });
  });

  it('demo: no PCM and no message logs, records, upgrades and handles bounded', async () => {
    const retention = { ...DEMO_RETENTION, maxRecords: 3, maxUpgrades: 4, maxResumptionHandles: 5 };
    await withEmulator({ retention, timing: 'eager' }, async (emu) => {
      for (let i = 0; i < 8; i++) await streamOnce(emu, 'eager');
      await emu.waitFor(() => emu.retained().openConnections === 0);
      expect(emu.retained()).toEqual({
        connectionRecords: 3,
        openConnections: 0,
        upgradeRecords: 4,
        pcmBytes: 0,
        messageLogEntries: 0,
        resumptionHandles: 5,
      });
      expect(emu.receivedPcm()).toHaveLength(0);
      // The counters are still there (the demo's logs and a test's totals need nothing more).
      expect(emu.connections.map((c) => c.id)).toEqual(['c6', 'c7', 'c8']);
      for (const rec of emu.connections) {
        expect(rec).toMatchObject({ audioBytes: utterancePcm(400, 700).length, turns: 1, handlesIssued: 2, handles: [], pcm: [] });
      }
    });
  });

  it('demo: a connection still open is never forgotten, however many records', async () => {
    await withEmulator({ retention: { ...DEMO_RETENTION, maxRecords: 1 } }, async (emu) => {
      const open = await setUp(emu);
      await streamOnce(emu, 'spaced');
      await streamOnce(emu, 'spaced');
      await emu.waitFor(() => emu.retained().openConnections === 1);
      expect(emu.connections.map((c) => c.id)).toEqual(['c1']);
      open.close();
    });
  });
});
