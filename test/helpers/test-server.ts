import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config/config';
import { startGeminiLiveEmulator, type EmulatorOptions, type GeminiLiveEmulator } from '../../src/emulator';
import { createLiveAudioServer, type LiveAudioServer, type ServerOverrides } from '../../src/server';
import { generateApiKey } from '../../src/services/auth';
import request from 'supertest';
import { signAccessToken } from './jwt';

export const JWT_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789';

export interface TestServer {
  server: LiveAudioServer;
  emu: GeminiLiveEmulator;
  url: string;
  port: number;
  keys: { alice: string; bob: string };
  jwtFor(userId: number, username: string): string;
  close(): Promise<void>;
}

/** Starts the emulator and the whole server in-process on loopback ports. */
export async function startTestServer(
  opts: { env?: Record<string, string>; emulator?: EmulatorOptions; overrides?: ServerOverrides } = {},
): Promise<TestServer> {
  const emu = await startGeminiLiveEmulator({ apiKeys: ['test-gemini-key'], ...opts.emulator });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-test-'));
  const keys = { alice: generateApiKey(), bob: generateApiKey() };
  const config = loadConfig({
    NODE_ENV: 'test',
    GEMINI_API_KEY: 'test-gemini-key',
    GEMINI_BASE_URL: emu.baseUrl,
    GEMINI_SETUP_TIMEOUT_MS: '3000',
    LIVE_AUDIO_API_KEYS: `alice:${keys.alice},bob:${keys.bob}`,
    LIVE_AUDIO_API_KEYS_FILE: path.join(dir, 'keys.json'),
    JWT_SECRET,
    CORS_ORIGINS: 'https://app.example.com',
    ...opts.env,
  });
  const server = await createLiveAudioServer(config, opts.overrides);
  const port = await server.listen(0, '127.0.0.1');
  return {
    server,
    emu,
    port,
    url: `http://127.0.0.1:${port}`,
    keys,
    jwtFor: (userId, username) => signAccessToken(JWT_SECRET, { userId, username }),
    async close() {
      await server.close();
      await emu.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The frontend's session id format: session_<ms>_<rand>. */
export const frontendSessionId = () => `session_${Date.now()}_${Math.random().toString(36).slice(2, 11)}`;

/** `POST /session/start` exactly as the Sculptor frontend sends it: a chat model id, text replies, both transcriptions. */
export function startLikeFrontend(url: string, headers: Record<string, string>, sessionId: string) {
  return request(url)
    .post('/api/v1/live-audio/session/start')
    .set(headers)
    .send({ session_id: sessionId, model: 'gemini-2.5-pro', response_modality: 'text', input_transcription: true, output_transcription: true });
}
