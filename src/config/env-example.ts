import { SETTINGS, type SectionName } from './settings';
import { START_ENV, START_NODE_FLAGS } from './process-flags';

const HEADER = [
  '# live-audio settings. Copy to .env and adjust. Every value here is optional: with none set, the server',
  '# runs in offline demo mode (built-in Gemini Live emulator) with a development API key printed once.',
  '#',
  '# Generated from src/config/settings.ts by `npm run env:example`: edit the table there, not this file.',
  '#',
  `# Not read from here: \`npm start\` and the Docker image run \`${startCommand()}\``,
  '# (src/config/process-flags.ts): glibc and V8 read them when the process starts. Starting node yourself, pass both.',
];

function startCommand(): string {
  const env = Object.entries(START_ENV).map(([k, v]) => `${k}=${v}`);
  return [...env, 'node', ...START_NODE_FLAGS, '...'].join(' ');
}

const WIDTH = 118;

/** Wraps a description into `# ` comment lines of at most `WIDTH` characters. */
function comment(text: string): string[] {
  const lines: string[] = [];
  let line = '#';
  for (const word of text.split(/\s+/)) {
    if (line.length + 1 + word.length > WIDTH && line !== '#') {
      lines.push(line);
      line = '#';
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

/** The text of `.env.example`: every variable of the table, by section, with its description and default. */
export function renderEnvExample(): string {
  const out = [...HEADER];
  for (const name of Object.keys(SETTINGS) as SectionName[]) {
    const section = SETTINGS[name];
    out.push('', `# --- ${section.title} ---`);
    for (const [variable, s] of Object.entries(section.vars)) {
      out.push(...comment(s.doc));
      out.push(`${'commented' in s && s.commented ? '# ' : ''}${variable}=${s.example}`);
    }
  }
  return `${out.join('\n')}\n`;
}
