import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { verifyWebhook } from '../../src/services/webhook';

export interface Received {
  headers: http.IncomingHttpHeaders;
  body: string;
  verified: boolean;
  at: number;
}

export type Behaviour = (n: number, req: http.IncomingMessage, res: http.ServerResponse) => void;

/** A real local HTTP receiver that verifies every delivery's signature the way the README tells receivers to. */
export async function startReceiver(secret: string, behaviour: Behaviour) {
  const received: Received[] = [];
  const sockets = new Set<import('node:net').Socket>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const body = Buffer.concat(chunks).toString('utf8');
      const v = verifyWebhook({
        secret,
        body,
        signature: req.headers['x-live-audio-signature'] as string | undefined,
        timestamp: req.headers['x-live-audio-timestamp'] as string | undefined,
      });
      received.push({ headers: req.headers, body, verified: v.ok, at: Date.now() });
      if (!v.ok) {
        res.writeHead(401).end();
        return;
      }
      behaviour(received.length, req, res);
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}/hooks/live-audio`,
    received,
    openSockets: () => sockets.size,
    async stop() {
      for (const s of sockets) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
