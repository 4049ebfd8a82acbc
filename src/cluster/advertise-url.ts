import os from 'node:os';

/**
 * The URL other instances reach this one on (`LIVE_AUDIO_ADVERTISE_URL`). Only a bare origin is accepted:
 * http(s), a host, an optional port, nothing else (no credentials, path, query or fragment), so what the
 * forwarder builds from it is always `<origin><request path>`.
 */
export function parseAdvertiseUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new Error(`advertise URL is not a URL: ${JSON.stringify(raw.slice(0, 100))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('advertise URL must be http:// or https://');
  if (u.username || u.password) throw new Error('advertise URL must not carry credentials');
  if ((u.pathname !== '/' && u.pathname !== '') || u.search || u.hash) throw new Error('advertise URL must be an origin (no path, query or fragment)');
  if (!u.hostname) throw new Error('advertise URL needs a host');
  return u.origin;
}

/**
 * Default advertise URL: `http://<HOST>:<PORT>`; a wildcard bind address (0.0.0.0, ::) cannot be dialled from
 * another machine, so the machine's host name stands in for it (a container's name in docker compose).
 */
export function defaultAdvertiseUrl(host: string, port: number, hostname: () => string = os.hostname): string {
  const wildcard = host === '0.0.0.0' || host === '::' || host === '' || host === '[::]';
  const h = wildcard ? hostname() : host;
  return parseAdvertiseUrl(`http://${h.includes(':') && !h.startsWith('[') ? `[${h}]` : h}:${port}`);
}
