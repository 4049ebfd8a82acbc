import { ApiClient, ApiError } from './api-client';
import { fromApiError, fromMicError, toPlain } from './plain-errors';
import { PcmPlayer, type PlayerStats } from './player';
import { RestConversation } from './rest-conversation';
import {
  newSessionId,
  type Conversation,
  type ConversationState,
  type Modality,
  type PlainError,
  type StatusView,
  type Transport,
  type TurnView,
} from './types';
import { WsConversation } from './ws-conversation';
import { parseToolDeclarations, ToolPanel } from './tool-panel';

const KEY_STORAGE = 'live-audio.apiKey';
const PREFS_STORAGE = 'live-audio.prefs';
const MAX_ERRORS = 8;

const STATE_TEXT: Record<ConversationState | 'idle', string> = {
  idle: 'Not started. Paste a key and press Start.',
  connecting: 'Connecting…',
  active: 'Live: speak now.',
  stopping: 'Stopping…',
  ended: 'Session ended.',
  failed: 'Could not start.',
};

function el<T extends HTMLElement>(root: ParentNode, testId: string): T {
  const found = root.querySelector<T>(`[data-testid="${testId}"]`);
  if (!found) throw new Error(`page element data-testid="${testId}" is missing`);
  return found;
}

function fmtClock(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, '0')}`;
}

/** The page: reads the controls, runs one conversation at a time, renders what it reports. */
export class App {
  private readonly $ = {
    key: el<HTMLInputElement>(document, 'api-key'),
    keyHint: el<HTMLElement>(document, 'key-hint'),
    transportHint: el<HTMLElement>(document, 'transport-hint'),
    mic: el<HTMLSelectElement>(document, 'microphone'),
    transport: el<HTMLSelectElement>(document, 'transport'),
    modality: el<HTMLSelectElement>(document, 'modality'),
    profile: el<HTMLSelectElement>(document, 'profile'),
    voice: el<HTMLInputElement>(document, 'voice'),
    language: el<HTMLInputElement>(document, 'language'),
    instruction: el<HTMLTextAreaElement>(document, 'system-instruction'),
    tools: el<HTMLTextAreaElement>(document, 'tools'),
    toolCalls: el<HTMLOListElement>(document, 'tool-calls'),
    showTranscript: el<HTMLButtonElement>(document, 'show-transcript'),
    transcript: el<HTMLOListElement>(document, 'transcript'),
    usage: el<HTMLElement>(document, 'usage'),
    start: el<HTMLButtonElement>(document, 'start'),
    stop: el<HTMLButtonElement>(document, 'stop'),
    banner: el<HTMLElement>(document, 'demo-banner'),
    status: el<HTMLElement>(document, 'status'),
    upstream: el<HTMLElement>(document, 'upstream'),
    reconnects: el<HTMLElement>(document, 'reconnects'),
    timeLeft: el<HTMLElement>(document, 'time-left'),
    sessionId: el<HTMLElement>(document, 'session-id'),
    user: el<HTMLElement>(document, 'user-transcript'),
    reply: el<HTMLElement>(document, 'model-response'),
    playback: el<HTMLElement>(document, 'playback'),
    history: el<HTMLOListElement>(document, 'history'),
    historyCount: el<HTMLElement>(document, 'history-count'),
    errorCard: el<HTMLElement>(document, 'error-card'),
    errors: el<HTMLUListElement>(document, 'error'),
  };
  private readonly player = new PcmPlayer((s) => this.renderPlayback(s));
  private conversation: Conversation | null = null;
  private stream: MediaStream | null = null;
  private expiresAt: number | null = null;
  private sessionMs = 15 * 60_000;
  private clock: number | undefined;
  private currentTurn: TurnView | null = null;
  private probeTimer: number | undefined;
  private probeSeq = 0;
  private busy = false;
  private endedText: string | null = null;
  /** The last session started (its transcript stays readable after it ended). */
  private lastSession: { api: ApiClient; id: string } | null = null;

  constructor(private readonly workletUrl: string) {}

  init(): void {
    const $ = this.$;
    $.key.value = sessionStorage.getItem(KEY_STORAGE) ?? '';
    this.loadPrefs();
    $.key.addEventListener('input', () => {
      sessionStorage.setItem(KEY_STORAGE, $.key.value.trim());
      window.clearTimeout(this.probeTimer);
      this.probeTimer = window.setTimeout(() => void this.probeKey(), 400);
    });
    for (const s of [$.transport, $.modality, $.mic]) s.addEventListener('change', () => this.savePrefs());
    $.transport.addEventListener('change', () => this.renderTransportHint());
    this.renderTransportHint();
    $.start.addEventListener('click', () => void this.start());
    $.stop.addEventListener('click', () => void this.stop());
    $.showTranscript.addEventListener('click', () => void this.showTranscript());
    navigator.mediaDevices?.addEventListener?.('devicechange', () => void this.listMicrophones());
    window.addEventListener('pagehide', () => this.conversation?.endNow());
    void this.listMicrophones();
    if ($.key.value) void this.probeKey();
    this.renderState('idle');
  }

  private loadPrefs(): void {
    try {
      const p = JSON.parse(sessionStorage.getItem(PREFS_STORAGE) ?? '{}') as Record<string, string>;
      if (p.transport === 'ws' || p.transport === 'rest') this.$.transport.value = p.transport;
      if (p.modality === 'audio' || p.modality === 'text') this.$.modality.value = p.modality;
      if (p.mic) this.$.mic.dataset.wanted = p.mic;
    } catch {
      /* ignore */
    }
  }

  private savePrefs(): void {
    const $ = this.$;
    sessionStorage.setItem(PREFS_STORAGE, JSON.stringify({ transport: $.transport.value, modality: $.modality.value, mic: $.mic.value }));
  }

  private renderTransportHint(): void {
    this.$.transportHint.textContent =
      this.$.transport.value === 'rest'
        ? 'MediaRecorder WebM, one POST /transcribe per second (not awaited), as the Sculptor frontend does.'
        : '16 kHz PCM over /ws/live-audio; words and reply audio stream back as they happen.';
  }

  private async listMicrophones(): Promise<void> {
    const sel = this.$.mic;
    if (!navigator.mediaDevices?.enumerateDevices) {
      sel.replaceChildren(new Option('Microphones need https:// or http://localhost', ''));
      return;
    }
    const wanted = sel.value || sel.dataset.wanted || '';
    const devices = (await navigator.mediaDevices.enumerateDevices().catch(() => [])).filter((d) => d.kind === 'audioinput');
    const options = [new Option('Default microphone', '')];
    devices
      .filter((d) => d.deviceId && d.deviceId !== 'default')
      .forEach((d, i) => options.push(new Option(d.label || `Microphone ${i + 1}`, d.deviceId)));
    sel.replaceChildren(...options);
    if (options.some((o) => o.value === wanted)) sel.value = wanted;
  }

  /** Checks the key against GET /sessions and learns whether the server runs the offline demo. */
  private async probeKey(): Promise<boolean> {
    const key = this.$.key.value.trim();
    const seq = ++this.probeSeq;
    if (!key) {
      this.$.keyHint.textContent = 'Kept in this tab only (sessionStorage).';
      this.$.keyHint.dataset.state = '';
      return false;
    }
    try {
      const ans = await new ApiClient(key).listSessions();
      if (seq !== this.probeSeq) return true;
      const mode = ans.data.mode ?? 'gemini';
      this.$.keyHint.textContent = mode === 'emulated' ? 'Key accepted (offline demo server).' : 'Key accepted.';
      this.$.keyHint.dataset.state = 'ok';
      this.showMode(mode, ans.data.notice);
      return true;
    } catch (err) {
      if (seq !== this.probeSeq) return false;
      this.$.keyHint.textContent = fromApiError(err, 'check the key').message;
      this.$.keyHint.dataset.state = 'bad';
      return false;
    }
  }

  private showMode(mode: string, notice: string | undefined): void {
    const b = this.$.banner;
    document.body.dataset.mode = mode;
    if (mode === 'emulated') {
      b.textContent = notice ?? 'Offline demo mode: replies come from the built-in emulator, not from Gemini.';
      b.hidden = false;
    } else {
      b.hidden = true;
      b.textContent = '';
    }
  }

  private async start(): Promise<void> {
    if (this.busy || this.conversation) return;
    const $ = this.$;
    const key = $.key.value.trim();
    this.clearErrors();
    if (!key) {
      this.showError({ message: 'Paste the API key the server printed when it started (it begins with ak_).', code: 'NO_KEY' });
      $.key.focus();
      return;
    }
    this.busy = true;
    $.start.disabled = true;
    const transport = $.transport.value as Transport;
    const modality = $.modality.value as Modality;
    this.resetConversationView();
    this.renderState('connecting');
    // Inside the click: lets the AudioContext start under autoplay rules.
    await this.player.unlock();
    this.player.leadMs = transport === 'rest' ? 1000 : 80;

    try {
      const api = new ApiClient(key);
      try {
        const ans = await api.listSessions();
        this.showMode(ans.data.mode ?? 'gemini', ans.data.notice);
      } catch (err) {
        const plain = fromApiError(err, 'check the API key');
        if (err instanceof ApiError && err.status === 401) {
          $.keyHint.textContent = 'The server did not accept this key.';
          $.keyHint.dataset.state = 'bad';
        }
        throw plain;
      }
      if (!navigator.mediaDevices?.getUserMedia) {
        throw { message: 'This page can use the microphone only over https:// or on http://localhost.', code: 'INSECURE_CONTEXT' } satisfies PlainError;
      }
      const deviceId = $.mic.value;
      try {
        this.stream = await navigator.mediaDevices.getUserMedia({
          audio: {
            ...(deviceId ? { deviceId: { exact: deviceId } } : {}),
            channelCount: 1,
            echoCancellation: true,
            noiseSuppression: true,
            sampleRate: 16000,
          },
        });
      } catch (err) {
        throw fromMicError(err);
      }
      void this.listMicrophones(); // labels become visible once permission is granted

      const sessionId = newSessionId(transport === 'ws' ? 'web_ws' : 'web_rest');
      const options = this.sessionOptions();
      const conv: Conversation =
        transport === 'ws'
          ? new WsConversation({ token: key, stream: this.stream, sessionId, modality, options, workletUrl: this.workletUrl })
          : new RestConversation({ api, stream: this.stream, sessionId, modality, options });
      this.lastSession = { api, id: sessionId };
      $.showTranscript.disabled = false;
      this.conversation = conv;
      $.sessionId.textContent = sessionId;
      $.status.dataset.sessionId = sessionId;
      $.status.dataset.transport = transport;
      this.wire(conv);
      await conv.start();
      $.stop.disabled = false;
    } catch (err) {
      this.showError(isPlain(err) ? err : toPlain(err, 'start'));
      this.renderState('failed');
      this.cleanup();
    } finally {
      this.busy = false;
    }
  }

  private wire(conv: Conversation): void {
    const panel = new ToolPanel(this.$.toolCalls, (id, response) => conv.answerToolCall(id, response), (e) => this.showError(e));
    panel.clear();
    conv.on('toolCalls', (pending) => panel.render(pending));
    conv.on('state', (s) => this.renderState(s));
    conv.on('expiry', (at, total) => {
      this.expiresAt = at;
      this.sessionMs = total;
      this.tick();
      window.clearInterval(this.clock);
      this.clock = window.setInterval(() => this.tick(), 1000);
    });
    conv.on('turn', (t) => this.renderTurn(t));
    conv.on('audio', (pcm, rate, turn) => this.player.enqueue(pcm, rate, turn));
    conv.on('interrupted', () => {
      this.player.stop();
      this.$.status.dataset.interruptions = String(Number(this.$.status.dataset.interruptions ?? '0') + 1);
    });
    conv.on('status', (s) => this.renderStatus(s));
    conv.on('error', (e) => this.showError(e));
    conv.on('ended', (info) => {
      const why = info.reason === 'client_end' ? 'you pressed Stop' : info.message || info.reason;
      this.$.status.dataset.endReason = info.reason;
      this.endedText = `Session ended (${why}).`;
      this.setStatusText(this.endedText);
      if (this.conversation === conv) this.cleanup();
    });
  }

  private async stop(): Promise<void> {
    const conv = this.conversation;
    if (!conv) return;
    this.$.stop.disabled = true;
    this.player.stop();
    await conv.stop();
    this.cleanup();
  }

  /** The per-session options the controls set (only those filled in; the server checks them strictly). */
  private sessionOptions(): Record<string, unknown> {
    const $ = this.$;
    const o: Record<string, unknown> = {};
    const tools = parseToolDeclarations($.tools.value);
    if (tools.error) throw { message: tools.error, code: 'INVALID_FIELD' } satisfies PlainError;
    if (tools.tools) o.tools = tools.tools;
    if ($.profile.value) o.profile = $.profile.value;
    if ($.voice.value.trim()) o.voice = $.voice.value.trim();
    if ($.language.value.trim()) o.language = $.language.value.trim();
    if ($.instruction.value.trim()) o.system_instruction = $.instruction.value.trim();
    return o;
  }

  /** Reads the last session's transcript (owner only) and lists its turns with what they cost. */
  private async showTranscript(): Promise<void> {
    const last = this.lastSession;
    if (!last) return;
    try {
      const t = await last.api.transcript(last.id);
      const items = t.data.turns.map((turn) => {
        const li = document.createElement('li');
        li.dataset.kind = turn.kind;
        const you = document.createElement('p');
        you.className = 'you';
        you.textContent = turn.kind === 'greeting' ? '(the model opened)' : turn.userText;
        const model = document.createElement('p');
        model.className = 'model';
        model.textContent = turn.replyText + (turn.interrupted ? ' [interrupted]' : '');
        li.append(you, model);
        return li;
      });
      this.$.transcript.replaceChildren(...items);
      this.$.usage.textContent = `${t.data.turns.length} turns, ${t.data.usage.totalTokens} tokens${t.data.live ? ' so far' : ''}`;
    } catch (err) {
      this.showError(fromApiError(err, 'read the transcript'));
    }
  }

  /** Releases the microphone and resets the buttons; the last texts stay on screen. */
  private cleanup(): void {
    this.conversation = null;
    this.stream?.getTracks().forEach((t) => t.stop());
    this.stream = null;
    window.clearInterval(this.clock);
    this.clock = undefined;
    this.$.start.disabled = false;
    this.$.stop.disabled = true;
  }

  private resetConversationView(): void {
    const $ = this.$;
    this.currentTurn = null;
    this.expiresAt = null;
    this.endedText = null;
    $.user.textContent = '';
    $.reply.textContent = '';
    $.history.replaceChildren();
    $.historyCount.textContent = '0';
    $.upstream.textContent = '–';
    $.reconnects.textContent = '–';
    $.timeLeft.textContent = '–';
    for (const k of ['endReason', 'upstream', 'reconnects', 'interruptions', 'sessionId', 'transport']) delete $.status.dataset[k];
  }

  private renderState(s: ConversationState | 'idle'): void {
    this.$.status.dataset.state = s;
    this.setStatusText(s === 'ended' && this.endedText ? this.endedText : STATE_TEXT[s]);
  }

  private setStatusText(text: string): void {
    const t = this.$.status.querySelector('.status-text');
    if (t) t.textContent = text;
  }

  private renderStatus(s: StatusView): void {
    const $ = this.$;
    if (s.upstreamConnected !== null) {
      $.upstream.textContent = s.upstreamConnected ? 'connected' : `not connected${s.upstreamState ? ` (${s.upstreamState})` : ''}`;
      $.status.dataset.upstream = s.upstreamConnected ? 'connected' : 'disconnected';
    }
    if (s.reconnects !== null) {
      $.reconnects.textContent = String(s.reconnects);
      $.status.dataset.reconnects = String(s.reconnects);
    }
  }

  private tick(): void {
    if (this.expiresAt === null) return;
    const left = this.expiresAt - Date.now();
    this.$.timeLeft.textContent = `${fmtClock(left)} of ${fmtClock(this.sessionMs)}`;
    this.$.timeLeft.dataset.ms = String(Math.max(0, left));
  }

  private renderTurn(t: TurnView): void {
    const $ = this.$;
    const prev = this.currentTurn;
    if (prev && prev.turnId !== t.turnId && (prev.user || prev.reply)) {
      const li = document.createElement('li');
      const you = document.createElement('p');
      you.className = 'you';
      you.textContent = prev.user || '(no words recognised)';
      const model = document.createElement('p');
      model.className = 'model';
      model.textContent = prev.reply + (prev.interrupted ? ' [interrupted]' : '');
      li.append(you, model);
      $.history.prepend(li);
      $.historyCount.textContent = String($.history.children.length);
    }
    this.currentTurn = t;
    $.user.textContent = t.user;
    $.reply.textContent = t.reply + (t.interrupted ? ' [interrupted]' : '');
    $.user.dataset.turn = String(t.turnId);
    $.reply.dataset.turnComplete = String(t.turnComplete);
  }

  private renderPlayback(s: PlayerStats): void {
    const p = this.$.playback;
    p.dataset.scheduledSamples = String(s.scheduledSamples);
    p.dataset.playedSamples = String(s.playedSamples);
    p.dataset.stoppedSamples = String(s.stoppedSamples);
    p.dataset.gaps = String(s.gaps);
    p.dataset.chunks = String(s.chunks);
    p.dataset.playing = String(s.playing);
    p.dataset.sampleRate = String(s.sampleRate);
    const secs = (n: number) => (n / 24000).toFixed(1);
    let text = `Reply audio: ${secs(s.playedSamples)} s played of ${secs(s.scheduledSamples)} s received`;
    if (s.stoppedSamples > 0) text += `, ${secs(s.stoppedSamples)} s cut by interruptions`;
    if (s.gaps > 0) text += `, ${s.gaps} gap${s.gaps === 1 ? '' : 's'}`;
    p.textContent = `${text}.${s.playing ? ' Playing…' : ''}`;
  }

  private showError(e: PlainError): void {
    const li = document.createElement('li');
    const time = document.createElement('time');
    time.textContent = new Date().toLocaleTimeString();
    const msg = document.createElement('span');
    msg.textContent = e.message;
    li.append(time, msg);
    if (e.code) {
      const code = document.createElement('code');
      code.textContent = e.code;
      li.append(code);
      li.dataset.code = e.code;
    }
    this.$.errors.prepend(li);
    while (this.$.errors.children.length > MAX_ERRORS) this.$.errors.lastElementChild?.remove();
    this.$.errorCard.hidden = false;
  }

  private clearErrors(): void {
    this.$.errors.replaceChildren();
    this.$.errorCard.hidden = true;
  }
}

function isPlain(x: unknown): x is PlainError {
  return !!x && typeof x === 'object' && !(x instanceof Error) && typeof (x as PlainError).message === 'string';
}
