import { connect, createServer, type Server, type Socket } from 'node:net';

/**
 * A loopback TCP proxy that delays what clients send by `delayMs` before passing it on (answers
 * come back at once), for injecting a slow dependency into another process for real: point a
 * worker's `AWS_ENDPOINT_URL_DYNAMODB` at it and every request it makes lands `delayMs` late,
 * in order. `delayMs` can change while it runs (0 passes straight through).
 */
export interface LatencyProxy {
  readonly endpoint: string;
  delayMs: number;
  stop(): Promise<void>;
}

export async function startLatencyProxy(
  target: string,
  options: { delayMs?: number } = {},
): Promise<LatencyProxy> {
  const upstream = new URL(target);
  const sockets = new Set<Socket>();
  const proxy = {
    delayMs: options.delayMs ?? 0,
  };
  const server: Server = createServer((client) => {
    const server = connect(Number(upstream.port), upstream.hostname);
    sockets.add(client);
    sockets.add(server);
    // Chunks keep their order: each goes when it is due, and never before the one ahead of it.
    let lastDue = 0;
    client.on('data', (chunk) => {
      const due = Math.max(Date.now() + proxy.delayMs, lastDue);
      lastDue = due;
      const wait = due - Date.now();
      if (wait <= 0) server.write(chunk);
      else setTimeout(() => server.write(chunk), wait);
    });
    server.on('data', (chunk) => client.write(chunk));
    const close = () => {
      client.destroy();
      server.destroy();
      sockets.delete(client);
      sockets.delete(server);
    };
    client.on('close', close);
    server.on('close', close);
    client.on('error', close);
    server.on('error', close);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  return Object.assign(proxy, {
    endpoint: `http://127.0.0.1:${port}`,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}
