import type { LiveModelCapabilities } from '../models/capabilities';
import type { LiveModelTable } from '../models/live-model-table';
import type { Profile, ProfileDefaults } from '../profiles/profile';
import type { EffectiveSessionSetup, NotApplied, SetupEcho, SetupSource, ThinkingSetup, VadSetup } from './effective-setup';
import { SESSION_OPTION_FIELDS, type SessionOptionField, type SessionOptions, type SetupProblem } from './session-options';

/** Server-wide values below every profile. */
export interface ServerSetupDefaults {
  responseModality: 'text' | 'audio';
  inputTranscription: boolean;
  outputTranscription: boolean;
  /** Sent for `greeting: true` when the profile has no greeting text of its own. */
  greeting: string;
}

export const DEFAULT_SERVER_SETUP: ServerSetupDefaults = {
  responseModality: 'text',
  inputTranscription: true,
  outputTranscription: true,
  greeting: 'Greet the user in one short sentence and ask how you can help.',
};

export type SetupResolution =
  | { ok: true; setup: EffectiveSessionSetup; echo: SetupEcho }
  | { ok: false; problem: SetupProblem };

interface Picked<T> {
  value: T;
  source: SetupSource;
}

/**
 * Works out what one session sends upstream from its request options (already validated by
 * `sessionOptionsSchema`), its profile (looked up by the caller from `options.profile ?? 'default'`; undefined
 * when there is no such profile), the model table and the server's defaults. Precedence: request, then
 * profile, then server. Pure: no I/O, no clock.
 *
 * Refusals (400): `UNKNOWN_PROFILE` (a named profile that does not exist), `PROFILE_LOCKED` (the request sets an
 * option its profile locks), `UNSUPPORTED_FOR_MODEL` (the request asks for something the chosen model lacks; every
 * such field is named, with the model). A profile's or the server's value that the model lacks is left out and
 * listed in `echo.not_applied` instead: the caller did not ask for it.
 */
export function resolveSessionSetup(
  options: SessionOptions,
  profile: Profile | undefined,
  models: LiveModelTable,
  server: ServerSetupDefaults = DEFAULT_SERVER_SETUP,
): SetupResolution {
  if (options.profile !== undefined && (!profile || profile.name !== options.profile)) {
    return fail({
      code: 'UNKNOWN_PROFILE',
      error: `Unknown profile "${options.profile}"`,
      fields: ['profile'],
      profile: options.profile,
    });
  }
  if (profile) {
    const locked = SESSION_OPTION_FIELDS.filter((f) => f !== 'profile' && options[f] !== undefined && profile.locked.includes(f));
    if (locked.length > 0) {
      return fail({
        code: 'PROFILE_LOCKED',
        error: `Profile "${profile.name}" does not let a request set ${locked.join(', ')}`,
        fields: locked,
        profile: profile.name,
      });
    }
  }
  const defaults: ProfileDefaults = profile?.defaults ?? {};
  // A chat model id (the Sculptor frontend's gemini-2.5-pro) falls back to the profile's model, else the default.
  const fallback = defaults.model !== undefined ? models.resolve(defaults.model).model : models.defaultModel;
  const choice = models.resolve(options.model, fallback);
  const model = models.require(choice.model);
  const r = new Resolution(options, defaults, model.id, model.capabilities, server);
  const setup = r.build();
  if (r.unsupported.length > 0) {
    return fail({
      code: 'UNSUPPORTED_FOR_MODEL',
      error: `Not supported by model ${model.id}: ${r.unsupported.map((u) => u.why).join('; ')}`,
      fields: r.unsupported.map((u) => u.field),
      model: model.id,
    });
  }
  return { ok: true, setup: { ...setup, profile: profile?.name ?? null }, echo: r.echo({ ...setup, profile: profile?.name ?? null }, choice) };
}

function fail(p: Omit<SetupProblem, 'status'>): SetupResolution {
  return { ok: false, problem: { status: 400, ...p } };
}

/** One resolution's working state: picks each field, collects refusals and values not applied. */
class Resolution {
  readonly unsupported: { field: string; why: string }[] = [];
  readonly notApplied: NotApplied[] = [];
  readonly sources: Partial<Record<SessionOptionField, SetupSource>> = {};

  constructor(
    private readonly req: SessionOptions,
    private readonly prof: ProfileDefaults,
    private readonly modelId: string,
    private readonly caps: LiveModelCapabilities,
    private readonly server: ServerSetupDefaults,
  ) {}

  /** The request's value, else the profile's; undefined when neither has one. */
  private pick<K extends keyof ProfileDefaults>(field: K): Picked<NonNullable<ProfileDefaults[K]>> | undefined {
    const fromReq = this.req[field];
    if (fromReq !== undefined) return { value: fromReq as NonNullable<ProfileDefaults[K]>, source: 'request' };
    const fromProf = this.prof[field];
    if (fromProf !== undefined) return { value: fromProf as NonNullable<ProfileDefaults[K]>, source: 'profile' };
    return undefined;
  }

  /** Records that the model lacks `field`: a refusal for the request, a note for a profile or server value. */
  private lacks(field: SessionOptionField, source: SetupSource, why: string, path: string = field): void {
    if (source === 'request') this.unsupported.push({ field: path, why: `${path}: ${why}` });
    else this.notApplied.push({ field, reason: why });
  }

  /** A field the model takes or not as a whole. */
  private simple<K extends keyof ProfileDefaults>(field: K, supported: boolean, why: string): NonNullable<ProfileDefaults[K]> | undefined {
    const p = this.pick(field);
    if (!p) return undefined;
    if (!supported) {
      this.lacks(field, p.source, why);
      return undefined;
    }
    this.sources[field] = p.source;
    return p.value;
  }

  build(): Omit<EffectiveSessionSetup, 'profile'> {
    const c = this.caps;
    const transcriptionOnly = !c.replies;
    const setup: Omit<EffectiveSessionSetup, 'profile'> = {
      model: this.modelId,
      upstreamModality: c.responseModality,
      responseModality: this.responseModality(),
      transcriptionOnly,
      inputTranscription: this.inputTranscription(),
      outputTranscription: false,
    };
    setup.outputTranscription = this.outputTranscription(setup.responseModality);

    const si = this.simple('system_instruction', c.systemInstruction, 'the model takes no system instruction');
    if (si !== undefined) setup.systemInstruction = si;
    const voice = this.simple('voice', c.voice, 'the model does not speak');
    if (voice !== undefined) setup.voice = voice;
    this.language(setup);
    const temperature = this.simple('temperature', c.sampling, 'the model takes no sampling settings');
    if (temperature !== undefined) setup.temperature = temperature;
    const maxTokens = this.simple('max_output_tokens', c.sampling, 'the model takes no sampling settings');
    if (maxTokens !== undefined) setup.maxOutputTokens = maxTokens;
    const vad = this.simple('vad', true, '');
    if (vad !== undefined) setup.vad = toVad(vad);
    const thinking = this.thinking();
    if (thinking) setup.thinking = thinking;
    this.proactiveAudio(setup);
    this.affectiveDialog(setup);
    this.transcriptionHints(setup);
    const greeting = this.greeting();
    if (greeting !== undefined) setup.greeting = greeting;
    if (c.maxAudioMsPerSession !== undefined) setup.maxAudioMs = c.maxAudioMsPerSession;
    this.tools(setup);
    return setup;
  }

  private responseModality(): 'text' | 'audio' {
    const p = this.pick('response_modality') ?? { value: this.server.responseModality, source: 'server' as const };
    if (p.value === 'audio' && this.caps.responseModality === 'TEXT') {
      this.lacks('response_modality', p.source, 'the model answers in text only');
      this.sources.response_modality = 'model';
      return 'text';
    }
    this.sources.response_modality = p.source;
    return p.value;
  }

  private inputTranscription(): boolean {
    const p = this.pick('input_transcription') ?? { value: this.server.inputTranscription, source: 'server' as const };
    if (!this.caps.replies && !p.value) {
      this.lacks('input_transcription', p.source, 'a transcription-only model always transcribes the input');
      this.sources.input_transcription = 'model';
      return true;
    }
    this.sources.input_transcription = p.source;
    return p.value;
  }

  private outputTranscription(responseModality: 'text' | 'audio'): boolean {
    const p = this.pick('output_transcription') ?? { value: this.server.outputTranscription, source: 'server' as const };
    if (!this.caps.outputTranscription) {
      if (p.value) this.lacks('output_transcription', p.source, 'the model does not reply');
      this.sources.output_transcription = 'model';
      return false;
    }
    this.sources.output_transcription = p.source;
    // Native-audio models only speak: a text reply is the transcription of the speech.
    return p.value || (this.caps.responseModality === 'AUDIO' && responseModality === 'text');
  }

  /** `language` sets the speech language; on a transcription model it is the transcription language instead. */
  private language(setup: Omit<EffectiveSessionSetup, 'profile'>): void {
    const p = this.pick('language');
    if (!p) return;
    if (this.caps.speechLanguage) {
      this.sources.language = p.source;
      setup.language = p.value;
    } else if (this.caps.transcriptionHints) {
      this.sources.language = p.source;
      if (this.pick('transcription_languages') === undefined) setup.transcriptionLanguages = [p.value];
    } else {
      this.lacks('language', p.source, 'the model takes no language');
    }
  }

  private thinking(): ThinkingSetup | undefined {
    const p = this.pick('thinking');
    if (!p) return undefined;
    const t = this.caps.thinking;
    if (t.kind === 'none') {
      this.lacks('thinking', p.source, 'the model takes no thinking configuration');
      return undefined;
    }
    if ('level' in p.value) {
      const level = p.value.level as ThinkingSetupLevel;
      if (t.kind !== 'level') {
        this.lacks('thinking', p.source, `the model takes a thinking budget (${t.min}..${t.max}), not a level`, 'thinking.level');
        return undefined;
      }
      if (!t.levels.includes(level)) {
        this.lacks('thinking', p.source, `level ${level} is not one of ${t.levels.join(', ')}`, 'thinking.level');
        return undefined;
      }
      this.sources.thinking = p.source;
      return { level };
    }
    const budget = p.value.budget;
    if (t.kind !== 'budget') {
      this.lacks('thinking', p.source, `the model takes a thinking level (${t.levels.join(', ')}), not a budget`, 'thinking.budget');
      return undefined;
    }
    if (budget < t.min || budget > t.max) {
      this.lacks('thinking', p.source, `budget must be between ${t.min} and ${t.max}`, 'thinking.budget');
      return undefined;
    }
    this.sources.thinking = p.source;
    return { budget };
  }

  private proactiveAudio(setup: Omit<EffectiveSessionSetup, 'profile'>): void {
    const p = this.pick('proactive_audio');
    const mode = this.caps.proactiveAudio;
    if (mode === 'always') {
      if (p && !p.value) this.lacks('proactive_audio', p.source, 'proactive audio is always on and cannot be turned off');
      this.sources.proactive_audio = 'model';
      return;
    }
    if (!p) return;
    if (mode === 'unsupported') {
      if (p.value) this.lacks('proactive_audio', p.source, 'the model has no proactive audio');
      else this.sources.proactive_audio = p.source;
      return;
    }
    this.sources.proactive_audio = p.source;
    if (p.value) {
      setup.proactiveAudio = true;
      if (this.caps.proactiveAudioApiVersion) setup.apiVersion = this.caps.proactiveAudioApiVersion;
    }
  }

  private affectiveDialog(setup: Omit<EffectiveSessionSetup, 'profile'>): void {
    const p = this.pick('affective_dialog');
    if (!p) return;
    if (!this.caps.affectiveDialog) {
      if (p.value) this.lacks('affective_dialog', p.source, 'the model has no affective dialog');
      else this.sources.affective_dialog = p.source;
      return;
    }
    this.sources.affective_dialog = p.source;
    if (p.value) {
      setup.affectiveDialog = true;
      if (this.caps.affectiveDialogApiVersion) setup.apiVersion = this.caps.affectiveDialogApiVersion;
    }
  }

  private transcriptionHints(setup: Omit<EffectiveSessionSetup, 'profile'>): void {
    const why = 'only a transcription model takes transcription hints';
    const langs = this.simple('transcription_languages', this.caps.transcriptionHints, why);
    if (langs !== undefined && langs.length > 0) setup.transcriptionLanguages = langs;
    const p = this.pick('custom_vocabulary');
    if (!p) return;
    if (!this.caps.transcriptionHints) return this.lacks('custom_vocabulary', p.source, why);
    if (p.value.length > this.caps.maxCustomVocabulary) {
      return this.lacks('custom_vocabulary', p.source, `at most ${this.caps.maxCustomVocabulary} terms`);
    }
    this.sources.custom_vocabulary = p.source;
    if (p.value.length > 0) setup.customVocabulary = p.value;
  }

  /**
   * Function declarations and Google Search (models-and-setup.md §1, §3): refused when the model has no function
   * calling, when a declaration asks for a behavior the model does not allow (3.1: blocking only; 3.8 extended
   * thinking: non-blocking only), or when the model has no search grounding. Each refusal names the tool.
   */
  private tools(setup: Omit<EffectiveSessionSetup, 'profile'>): void {
    const t = this.caps.tools;
    const p = this.pick('tools');
    if (p && p.value.length > 0) {
      if (!t.functionCalling) {
        this.lacks('tools', p.source, 'the model takes no function declarations');
      } else {
        const refused = p.value.filter((d) => d.behavior !== undefined && !t.allowedBehaviors.includes(d.behavior));
        for (const d of refused) {
          this.lacks('tools', p.source, `${d.name}: behavior ${d.behavior} is not allowed (the model allows ${t.allowedBehaviors.join(', ')})`, `tools.${d.name}.behavior`);
        }
        if (refused.length === 0) {
          this.sources.tools = p.source;
          setup.tools = p.value.map((d) => ({
            name: d.name,
            ...(d.description !== undefined ? { description: d.description } : {}),
            ...(d.parameters !== undefined ? { parameters: d.parameters } : {}),
            ...(d.behavior !== undefined ? { behavior: d.behavior } : {}),
            effectiveBehavior: d.behavior ?? t.defaultBehavior,
          }));
        }
      }
    } else if (p) this.sources.tools = p.source;
    const g = this.pick('google_search');
    if (!g) return;
    if (g.value && !t.googleSearch) return this.lacks('google_search', g.source, 'the model has no Google Search grounding');
    this.sources.google_search = g.source;
    if (g.value) setup.googleSearch = true;
  }

  /** `true` means the profile's greeting (or the server's); a string is the instruction itself; `false` none. */
  private greeting(): string | undefined {
    const p = this.pick('greeting');
    if (!p || p.value === false) {
      if (p) this.sources.greeting = p.source;
      return undefined;
    }
    if (!this.caps.replies) {
      this.lacks('greeting', p.source, 'a transcription-only model does not speak');
      return undefined;
    }
    this.sources.greeting = p.source;
    if (typeof p.value === 'string') return p.value;
    const own = this.prof.greeting;
    if (typeof own === 'string') {
      this.sources.greeting = 'profile';
      return own;
    }
    this.sources.greeting = 'server';
    return this.server.greeting;
  }

  echo(s: EffectiveSessionSetup, choice: { requested: string | undefined; fellBack: boolean }): SetupEcho {
    const src = this.sources;
    const text = (value: string | undefined, source: SetupSource | undefined) =>
      value === undefined ? null : { source: source ?? 'server', chars: value.length, ...(source === 'request' ? { text: value } : {}) };
    const vad = s.vad;
    return {
      model: s.model,
      requested_model: choice.requested ?? null,
      model_fell_back: choice.fellBack,
      profile: s.profile,
      api_version: s.apiVersion ?? null,
      response_modality: s.responseModality,
      transcription_only: s.transcriptionOnly,
      input_transcription: s.inputTranscription,
      output_transcription: s.outputTranscription,
      system_instruction: text(s.systemInstruction, src.system_instruction),
      voice: s.voice ?? null,
      language: s.language ?? null,
      temperature: s.temperature ?? null,
      max_output_tokens: s.maxOutputTokens ?? null,
      vad: !vad
        ? null
        : vad.mode === 'manual'
          ? { manual: true }
          : {
              manual: false,
              start_sensitivity: vad.startSensitivity ?? null,
              end_sensitivity: vad.endSensitivity ?? null,
              prefix_padding_ms: vad.prefixPaddingMs ?? null,
              silence_duration_ms: vad.silenceDurationMs ?? null,
            },
      thinking: s.thinking ?? null,
      proactive_audio: this.caps.proactiveAudio === 'always' || s.proactiveAudio === true,
      affective_dialog: s.affectiveDialog === true,
      transcription_languages: s.transcriptionLanguages ?? null,
      custom_vocabulary: s.customVocabulary ? { terms: s.customVocabulary.length } : null,
      greeting: text(s.greeting, src.greeting),
      max_audio_ms: s.maxAudioMs ?? null,
      tools: s.tools ? s.tools.map((d) => ({ name: d.name, behavior: d.effectiveBehavior })) : null,
      google_search: s.googleSearch === true,
      sources: { ...src },
      not_applied: [...this.notApplied],
    };
  }
}

type ThinkingSetupLevel = Extract<ThinkingSetup, { level: unknown }>['level'];

function toVad(v: NonNullable<SessionOptions['vad']>): VadSetup {
  if ('manual' in v) return { mode: 'manual' };
  const out: VadSetup = { mode: 'automatic' };
  if (v.start_sensitivity) out.startSensitivity = v.start_sensitivity;
  if (v.end_sensitivity) out.endSensitivity = v.end_sensitivity;
  if (v.prefix_padding_ms !== undefined) out.prefixPaddingMs = v.prefix_padding_ms;
  if (v.silence_duration_ms !== undefined) out.silenceDurationMs = v.silence_duration_ms;
  return out;
}
