/**
 * How the tests and the fixture recorder start Debian's Chromium: headless, no background network
 * (this machine has none), and a fake microphone playing a WAV file in a loop.
 */
export const CHROMIUM_PATH = '/usr/bin/chromium';

export function chromiumArgs(fakeMicWav: string, extra: string[] = []): string[] {
  return [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--use-fake-ui-for-media-stream',
    '--use-fake-device-for-media-stream',
    `--use-file-for-fake-audio-capture=${fakeMicWav}`,
    ...extra,
  ];
}
