import { scriptedScenario } from '../../src/emulator';
import { startTestServer } from '../helpers/test-server';
import { connectAuthed } from './ws-test-client';
it.each([100, 1000])('prof %i', async (outChunkMs) => {
  const t = await startTestServer();
  t.emu.setScenario(scriptedScenario([], { fallback: { userTranscript: '', reply: 'a b c', replyAudioMs: 60000 }, outChunkMs }));
  for (const paused of [false, true]) {
    const c = await connectAuthed(t.url, t.keys.alice);
    await c.request({ type: 'start_session', session_id: 'p', response_modality: 'audio' }, 'session_started');
    if (paused) (c.ws as any)._socket.pause();
    const t0 = Date.now();
    c.send({ type: 'text', text: 'x' });
    const conn = t.emu.connections.at(-1)!;
    await t.emu.waitFor(() => conn.sent.some((s) => s.kind === 'turnComplete'), 60000);
    const tEmu = Date.now() - t0;
    await t.emu.waitFor(() => t.server.registry.listFor('key:alice')[0]?.snapshot().turnComplete === true, 60000);
    const tSrv = Date.now() - t0;
    let tCli = -1;
    if (!paused) { await c.next('turn_complete', () => true, 60000); tCli = Date.now() - t0; }
    console.log(`RESULT chunk=${outChunkMs} paused=${paused} emuDone=${tEmu} serverDone=${tSrv} clientDone=${tCli}`);
    (c.ws as any)._socket.resume();
    c.close(); await c.waitClose();
    await t.emu.waitFor(() => t.server.registry.size === 0);
  }
  await t.close();
}, 120000);
