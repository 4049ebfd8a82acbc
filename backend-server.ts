/**
 * Entry point: load `.env`, read the config once, build the server, listen, and shut down gracefully.
 * Everything else lives in src/ and has no side effects at import time.
 */
import 'dotenv/config';
import { ConfigError, loadConfig } from './src/config/config';
import { createLiveAudioServer, EMULATED_NOTICE } from './src/server';

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env, { isTTY: process.stdout.isTTY });
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(err.message);
      process.exit(2);
    }
    throw err;
  }
  const server = await createLiveAudioServer(config);
  const log = server.logger;

  process.on('unhandledRejection', (reason) => {
    log.error({ err: reason }, 'unhandled promise rejection (kept running)');
  });

  const port = await server.listen();
  const base = `http://${config.host === '0.0.0.0' ? 'localhost' : config.host}:${port}`;
  log.info({ port, mode: server.service.emulated ? 'emulated' : 'gemini' }, `live-audio listening on ${base}`);
  if (server.service.emulated) {
    log.warn(EMULATED_NOTICE);
    console.log(`\n  ${EMULATED_NOTICE}\n  Set GEMINI_API_KEY in .env to talk to the real Gemini Live API.\n`);
  }
  if (server.devKey) {
    // Printed once, on the start that created it; only its hash is stored.
    console.log(
      `\n  Development API key (shown only now, stored hashed in ${server.devKey.filePath}):\n\n    ${server.devKey.key}\n\n` +
        `  Try: curl -H "X-API-Key: ${server.devKey.key}" ${base}/api/v1/live-audio/sessions\n`,
    );
  }
  console.log(`  Try it in a browser: open ${base}/ and paste an API key.\n`);

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // A second signal: stop waiting for live sessions.
      log.warn({ signal }, 'second signal: ending live sessions now');
      await server.close();
      process.exit(0);
    }
    stopping = true;
    log.info({ signal, drainMs: config.ops.drainMs }, 'shutting down gracefully');
    // Last resort if closing hangs (it should not): exit non-zero so the supervisor notices.
    setTimeout(() => {
      log.error('shutdown did not finish in time; exiting');
      process.exit(1);
    }, config.ops.drainMs + 15_000).unref();
    await server.drain(config.ops.drainMs);
    process.exit(0);
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

main().catch((err) => {
  console.error('live-audio failed to start:', err instanceof Error ? err.message : err);
  process.exit(1);
});
