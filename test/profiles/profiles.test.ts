import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LiveModelTable } from '../../src/services/models';
import {
  builtinProfiles,
  INTERVIEW_GREETING,
  MAX_PROFILES_FILE_BYTES,
  parseProfilesText,
  ProfileConfigError,
  ProfileFileError,
  ProfileStore,
} from '../../src/services/profiles';
import { parseSessionOptions, resolveSessionSetup } from '../../src/services/session-setup';
import { createLogger } from '../../src/util/logger';
import { LogCapture } from '../helpers/log-capture';

const models = new LiveModelTable();
let dir: string;
beforeEach(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'profiles-'));
});
afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

function resolveWith(store: ProfileStore, input: Record<string, unknown>) {
  const parsed = parseSessionOptions(input);
  if (!parsed.ok) throw new Error(JSON.stringify(parsed.problem));
  return resolveSessionSetup(parsed.value, store.peek(parsed.value.profile ?? 'default'), models);
}

/** Writes like an editor or a deploy does: a new file renamed over the old one. */
function writeAtomically(file: string, text: string): void {
  const tmp = `${file}.${Math.random().toString(16).slice(2)}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

const GOOD_YAML = `
profiles:
  coach:
    description: A speaking coach
    model: gemini-3.1-flash-live-preview
    system_instruction: You help the user practise small talk.
    voice: kore
    language: en-gb
    thinking: { level: minimal }
    greeting: Greet the user and suggest a topic.
    locked: [system_instruction, model]
  interview:
    system_instruction: You interview for a nursing position.
    greeting: Ask the candidate why they chose nursing.
`;

describe('built-in profiles (no file)', () => {
  it('default holds the server-wide settings; interview opens with a question; transcribe uses the transcribe model', () => {
    const store = new ProfileStore({ models, server: { systemInstruction: 'Be kind.', voice: 'puck' } });
    expect(store.status()).toMatchObject({ filePath: null, profiles: ['default', 'interview', 'transcribe'], fromFile: 0 });
    const d = resolveWith(store, {});
    expect(d.ok && d.setup).toMatchObject({ profile: 'default', systemInstruction: 'Be kind.', voice: 'Puck', model: 'gemini-3.8-live' });
    const i = resolveWith(store, { profile: 'interview', language: 'de-DE', voice: 'Charon' });
    expect(i.ok && i.setup).toMatchObject({ model: 'gemini-3.8-live', greeting: INTERVIEW_GREETING, language: 'de-DE', voice: 'Charon', responseModality: 'audio' });
    // The Sculptor frontend sends a chat model id: the transcribe profile keeps its model.
    const t = resolveWith(store, { profile: 'transcribe', model: 'gemini-2.5-pro', language: 'fr' });
    expect(t.ok && t.setup).toMatchObject({ model: 'gemini-3.5-transcribe-live', transcriptionOnly: true, transcriptionLanguages: ['fr'] });
  });

  it('an unknown LIVE_AUDIO_VOICE stops the server with a clear message', () => {
    expect(() => builtinProfiles({ voice: 'Robot' })).toThrow(ProfileConfigError);
    expect(() => builtinProfiles({ voice: 'Robot' })).toThrow(/LIVE_AUDIO_VOICE: "Robot" is not a prebuilt voice/);
  });
});

describe('the profiles file', () => {
  it('loads YAML, overrides a built-in, locks options', () => {
    const file = path.join(dir, 'profiles.yaml');
    fs.writeFileSync(file, GOOD_YAML);
    const store = new ProfileStore({ models, filePath: file });
    expect(store.status()).toMatchObject({ fromFile: 2, loads: 1, lastError: null });
    expect(store.peek('coach')).toMatchObject({ source: 'file', defaults: { voice: 'Kore', language: 'en-GB' }, locked: ['system_instruction', 'model'] });
    const i = resolveWith(store, { profile: 'interview' });
    expect(i.ok && i.setup.greeting).toBe('Ask the candidate why they chose nursing.');
    const locked = resolveWith(store, { profile: 'coach', model: 'gemini-3.8-live' });
    expect(locked.ok ? undefined : locked.problem).toMatchObject({ code: 'PROFILE_LOCKED', fields: ['model'], profile: 'coach' });
    const ok = resolveWith(store, { profile: 'coach', voice: 'Puck' });
    expect(ok.ok && ok.setup).toMatchObject({ model: 'gemini-3.1-flash-live-preview', voice: 'Puck', thinking: { level: 'minimal' } });
  });

  it('loads JSON', () => {
    const file = path.join(dir, 'profiles.json');
    fs.writeFileSync(file, JSON.stringify({ profiles: { quiet: { temperature: 0.1, vad: { manual: true } } } }));
    const store = new ProfileStore({ models, filePath: file });
    expect(store.peek('quiet')?.defaults).toEqual({ temperature: 0.1, vad: { manual: true } });
  });

  it.each([
    ['profiles:\n  coach:\n    voise: Kore\n', /profile "coach": voise is not a known field/],
    ['profiles:\n  coach:\n    voice: HAL\n', /profile "coach": voice must be one of the prebuilt voices/],
    ['profiles:\n  coach:\n    locked: [profile]\n', /profile "coach": locked\.0/],
    ['profiles:\n  coach:\n    model: gemini-3.8-live\n    thinking: { level: low }\n', /profile "coach": .*thinking.*gemini-3\.8-live/],
    ['profiles:\n  coach:\n    model: gemini-2.5-pro\n', /profile "coach": model "gemini-2.5-pro" is not a known Live model/],
    ['profiles:\n  "bad name":\n    voice: Kore\n', /profile name "bad name"/],
    ['profile:\n  coach: {}\n', /expected \{ profiles:/],
    ['profiles:\n  coach:\n    voice: Kore\n  coach:\n    voice: Puck\n', /not valid YAML.*DUPLICATE_KEY/],
    ['profiles: [unclosed\n', /not valid YAML/],
    ['{"profiles": ', /not valid JSON/],
  ])('refuses %j with an error naming the profile and field', (text, re) => {
    const file = path.join(dir, 'p.yaml');
    fs.writeFileSync(file, text);
    expect(() => new ProfileStore({ models, filePath: file })).toThrow(ProfileFileError);
    expect(() => new ProfileStore({ models, filePath: file })).toThrow(re);
  });

  it('a missing file is no file: the built-ins', () => {
    const store = new ProfileStore({ models, filePath: path.join(dir, 'absent.yaml') });
    expect(store.status()).toMatchObject({ profiles: ['default', 'interview', 'transcribe'], fromFile: 0, lastError: null });
  });

  it('is re-read on change; a bad reload keeps the last good set (logged); a fix is picked up; deletion leaves the built-ins', async () => {
    const file = path.join(dir, 'profiles.yaml');
    fs.writeFileSync(file, GOOD_YAML);
    const logs = new LogCapture();
    const store = new ProfileStore({ models, filePath: file, reloadIntervalMs: 0, log: createLogger({ level: 'info', pretty: false, destination: logs }) });
    writeAtomically(file, 'profiles:\n  coach:\n    voice: Puck\n');
    expect((await store.get('coach'))?.defaults.voice).toBe('Puck');
    expect(store.peek('interview')?.source).toBe('builtin'); // the override is gone with the new file

    writeAtomically(file, 'garbage: [[[\n\u0000\u0001');
    expect((await store.get('coach'))?.defaults.voice).toBe('Puck');
    expect(store.status().lastError).toMatch(/not valid YAML/);
    expect(logs.lines().some((l) => l.msg === 'profiles file is invalid; keeping the previous profiles')).toBe(true);

    writeAtomically(file, 'profiles:\n  coach:\n    voice: Charon\n');
    expect((await store.get('coach'))?.defaults.voice).toBe('Charon');
    expect(store.status()).toMatchObject({ lastError: null, loads: 3 });

    fs.rmSync(file);
    expect(await store.get('coach')).toBeUndefined();
    expect(store.status()).toMatchObject({ fromFile: 0, profiles: ['default', 'interview', 'transcribe'] });
  });

  it('checks the file at most once per interval', async () => {
    const file = path.join(dir, 'profiles.yaml');
    fs.writeFileSync(file, 'profiles:\n  a: {}\n');
    let now = 0;
    const store = new ProfileStore({ models, filePath: file, reloadIntervalMs: 1000, now: () => now });
    writeAtomically(file, 'profiles:\n  b: {}\n');
    now = 500;
    expect(await store.get('b')).toBeUndefined();
    now = 1001;
    expect(await store.get('b')).toBeDefined();
  });
});

describe('attacker: hostile profiles files are refused, bounded, with a clear error', () => {
  const time = (fn: () => void) => {
    const t0 = performance.now();
    fn();
    return performance.now() - t0;
  };

  it('deeply nested YAML and JSON', () => {
    const depth = 100_000;
    const yaml = `profiles:\n  x: ${'['.repeat(depth)}${']'.repeat(depth)}\n`;
    const json = `{"profiles":{"x":${'['.repeat(depth)}${']'.repeat(depth)}}}`;
    for (const [name, text] of [['p.yaml', yaml], ['p.json', json]] as const) {
      let err: unknown;
      const ms = time(() => {
        try {
          parseProfilesText(text, name, models);
        } catch (e) {
          err = e;
        }
      });
      expect(err).toBeInstanceOf(ProfileFileError);
      expect((err as Error).message).toMatch(/nested|not valid|larger/);
      expect(ms).toBeLessThan(1000); // measured: ~1 ms (a linear scan refuses it before any parser runs)
    }
    const shallowButDeep = `profiles:\n  x:\n    vad: ${JSON.stringify(Array.from({ length: 20 }).reduce((a) => ({ a }), {}))}\n`;
    expect(() => parseProfilesText(shallowButDeep, 'p.yaml', models)).toThrow(/nested deeper than 12 levels/);
  });

  it('oversized files are refused from their size, before they are read', () => {
    const file = path.join(dir, 'big.yaml');
    fs.writeFileSync(file, `profiles:\n  x:\n    description: ${'a'.repeat(MAX_PROFILES_FILE_BYTES)}\n`);
    expect(() => new ProfileStore({ models, filePath: file })).toThrow(/larger than 262144 bytes/);
  });

  it('a "billion laughs" alias bomb is not expanded', () => {
    const lines = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]'];
    for (let i = 1; i < 10; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(', ')}]`);
    const text = `${lines.join('\n')}\nprofiles:\n  x:\n    custom_vocabulary: *a9\n`;
    let err: unknown;
    const ms = time(() => {
      try {
        parseProfilesText(text, 'bomb.yaml', models);
      } catch (e) {
        err = e;
      }
    });
    expect(err).toBeInstanceOf(ProfileFileError);
    expect(ms).toBeLessThan(2000);
  });

  it('a thousand profiles are refused; a profile with 10,000 vocabulary terms names its field', () => {
    const many = { profiles: Object.fromEntries(Array.from({ length: 1000 }, (_, i) => [`p${i}`, {}])) };
    expect(() => parseProfilesText(JSON.stringify(many), 'p.json', models)).toThrow(/at most 100 profiles/);
    const vocab = { profiles: { stt: { model: 'gemini-3.5-transcribe-live', custom_vocabulary: Array.from({ length: 10_000 }, (_, i) => `t${i}`) } } };
    expect(() => parseProfilesText(JSON.stringify(vocab), 'p.json', models)).toThrow(/profile "stt": custom_vocabulary at most 1000 terms/);
  });
});
