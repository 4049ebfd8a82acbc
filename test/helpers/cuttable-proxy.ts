import net from 'node:net';

/**
 * A TCP proxy on loopback in front of one server, standing for a load balancer or a network path: `cut()` drops
 * every client connection on the client's side at once (the client sees its socket die) while the server's side
 * stays open and silent, as when a proxy or a NAT loses the path: the server learns nothing until its own
 * heartbeat gives up.
 */
export interface CuttableProxy {
  readonly url: string;
  /** Drops the client sides; the server sides are kept open, paused, nothing more sent either way. */
  cut(): void;
  close(): Promise<void>;
}

export async function startCuttableProxy(targetPort: number): Promise<CuttableProxy> {
  const pairs: { client: net.Socket; server: net.Socket }[] = [];
  const kept: net.Socket[] = [];
  const srv = net.createServer((client) => {
    const server = net.connect(targetPort, '127.0.0.1');
    client.pipe(server);
    server.pipe(client);
    client.on('error', () => undefined);
    server.on('error', () => undefined);
    pairs.push({ client, server });
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    cut() {
      for (const { client, server } of pairs.splice(0)) {
        client.unpipe(server);
        server.unpipe(client);
        server.pause();
        kept.push(server);
        client.destroy();
      }
    },
    async close() {
      for (const s of kept.splice(0)) s.destroy();
      for (const { client, server } of pairs.splice(0)) {
        client.destroy();
        server.destroy();
      }
      await new Promise<void>((r) => srv.close(() => r()));
    },
  };
}
