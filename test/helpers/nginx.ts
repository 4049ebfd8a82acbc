import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { childProcesses, processAlive } from '../ops/helpers';
import { freePort, requireBinary, waitForPort } from './system-binary';

/** deploy/nginx/live-audio.conf.template: the same file docker compose uses. */
export const NGINX_TEMPLATE = path.resolve(__dirname, '../../deploy/nginx/live-audio.conf.template');

export interface NginxAccessEntry {
  status: number;
  request: string;
  /** `127.0.0.1:port` of the instance that answered (several, comma-separated, when nginx tried more than one). */
  upstream: string;
}

export interface NginxLoadBalancer {
  readonly port: number;
  readonly url: string;
  /** PID of the nginx master process. */
  readonly pid: number;
  /** Parsed access log: which instance served each request. */
  accessLog(): NginxAccessEntry[];
  errorLog(): string;
  /** SIGTERM to the master (then SIGKILL to it and its workers, by PID, after 5 s); removes its folder. */
  stop(): Promise<void>;
}

/** Fills `${NAME}` like envsubst does (unknown names are an error here, not an empty string). */
export function renderTemplate(text: string, vars: Record<string, string>): string {
  return text.replace(/\$\{([A-Z0-9_]+)\}/g, (_m, name: string) => {
    if (!(name in vars)) throw new Error(`template variable ${name} has no value`);
    return vars[name];
  });
}

/**
 * Starts Debian's nginx as a round-robin load balancer over `upstreamPorts` (127.0.0.1) from the deploy template:
 * a non-daemon master with one worker, its own prefix, pid, temp and log files in a temp dir, an access log that
 * names the upstream of each request. Stopped by PID only.
 */
export async function startNginx(opts: { upstreamPorts: number[]; port?: number }): Promise<NginxLoadBalancer> {
  const bin = requireBinary('nginx', 'nginx');
  const port = opts.port ?? (await freePort());
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'live-audio-nginx-'));
  fs.chmodSync(dir, 0o755);
  // Workers run as an unprivileged user when nginx starts as root: their temp folders must be theirs to write.
  for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.mkdirSync(path.join(dir, t), { mode: 0o777 });
  for (const t of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) fs.chmodSync(path.join(dir, t), 0o777);
  const site = renderTemplate(fs.readFileSync(NGINX_TEMPLATE, 'utf8'), {
    LIVE_AUDIO_LISTEN_PORT: `127.0.0.1:${port}`,
    LIVE_AUDIO_UPSTREAMS: opts.upstreamPorts.map((p) => `server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n    '),
  });
  fs.writeFileSync(path.join(dir, 'live-audio.conf'), site);
  const accessLog = path.join(dir, 'access.log');
  const errorLog = path.join(dir, 'error.log');
  fs.writeFileSync(
    path.join(dir, 'nginx.conf'),
    `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${errorLog} notice;
events { worker_connections 1024; }
http {
  log_format upstreamlog '$status "$request" upstream=$upstream_addr';
  access_log ${accessLog} upstreamlog;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  include ${dir}/live-audio.conf;
}
`,
  );
  const child: ChildProcess = spawn(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-e', errorLog], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  child.stderr!.on('data', (d: Buffer) => (out += d));
  const readErr = () => (fs.existsSync(errorLog) ? fs.readFileSync(errorLog, 'utf8') : '');
  try {
    await waitForPort(port, 10_000, 'nginx', () => child.exitCode === null);
  } catch (err) {
    if (child.exitCode === null) child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
    throw new Error(`${(err as Error).message}\n${out}\n${readErr()}`);
  }
  const pid = child.pid!;
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    pid,
    accessLog: () =>
      (fs.existsSync(accessLog) ? fs.readFileSync(accessLog, 'utf8') : '')
        .split('\n')
        .flatMap((line) => {
          const m = /^(\d+) "(.*)" upstream=(.*)$/.exec(line);
          return m ? [{ status: Number(m[1]), request: m[2], upstream: m[3] }] : [];
        }),
    errorLog: readErr,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        const workers = childProcesses(pid);
        const gone = new Promise<void>((r) => child.once('exit', () => r()));
        child.kill('SIGTERM');
        const t = setTimeout(() => {
          child.kill('SIGKILL');
          for (const w of workers) if (processAlive(w)) process.kill(w, 'SIGKILL');
        }, 5000);
        await gone;
        clearTimeout(t);
        // Workers exit with a TERMinated master; make sure none outlives it.
        for (const w of workers) if (processAlive(w)) process.kill(w, 'SIGKILL');
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
