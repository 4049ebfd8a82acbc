/**
 * The HTTP counters' labels stay bounded whatever a stranger requests (the middleware binds one child per label
 * set): 2,000 requests to random paths are counted under route "other". Random paths are seeded; the seed is printed.
 */
import request from 'supertest';
import { routeLabel } from '../../src/observability/metrics';
import { startTestServer } from '../helpers/test-server';
import { prng } from './helpers';

const SEED = Number(process.env.TEST_SEED ?? 1302);

it('routeLabel: the static routes, the status route with its id replaced, everything else "other"', () => {
  for (const p of ['/api/v1/live-audio/sessions', '/api/v1/live-audio/session/start', '/api/v1/live-audio/streaming/start', '/api/v1/live-audio/transcribe', '/api/v1/live-audio/session/end', '/health', '/ready', '/metrics']) {
    expect(routeLabel(p)).toBe(p);
  }
  expect(routeLabel('/api/v1/live-audio/session/abc-123/status')).toBe('/api/v1/live-audio/session/:session_id/status');
  for (const p of ['/api/v1/live-audio/transcribe/', '/healthz', '/api/v1/live-audio/session/a/b/status', '']) expect(routeLabel(p)).toBe('other');
});

it(`a stranger's 2,000 random paths add one label set, not 2,000 (seed ${SEED})`, async () => {
  const t = await startTestServer();
  try {
    const rnd = prng(SEED);
    const agent = request.agent(t.url);
    for (let i = 0; i < 2000; i++) {
      const path = `/${Math.floor(rnd() * 1e12).toString(36)}/${Math.floor(rnd() * 1e12).toString(36)}`;
      expect((await agent.get(path)).status).toBe(404);
    }
    const m = (await request(t.url).get('/metrics')).text;
    const lines = m.split('\n').filter((l) => l.startsWith('live_audio_http_responses_total{'));
    expect(lines.filter((l) => l.includes('route="other"'))).toEqual(['live_audio_http_responses_total{route="other",method="GET",status="404"} 2000']);
    expect(lines.length).toBeLessThan(5);
  } finally {
    await t.close();
  }
});
