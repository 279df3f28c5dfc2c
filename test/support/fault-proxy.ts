import { createServer, type IncomingMessage, request, type Server } from 'node:http';

export interface FaultProxy {
  readonly endpoint: string;
  /** Requests answered with a fault, as `METHOD path?query`. */
  readonly faults: string[];
  close(): Promise<void>;
}

/**
 * A loopback proxy in front of the real S3 API server that answers 500 to the requests `fail`
 * picks: an S3 that breaks on the third part is a fault the real server cannot produce on cue.
 */
export async function startFaultProxy(
  target: string,
  fail: (req: IncomingMessage) => boolean,
): Promise<FaultProxy> {
  const upstream = new URL(target);
  const faults: string[] = [];
  const server: Server = createServer((req, res) => {
    if (fail(req)) {
      faults.push(`${req.method} ${req.url}`);
      req.resume();
      res.writeHead(500, { 'content-type': 'application/xml' });
      res.end(
        '<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code><Message>injected</Message></Error>',
      );
      return;
    }
    const forward = request(
      {
        host: upstream.hostname,
        port: upstream.port,
        method: req.method,
        path: req.url,
        headers: req.headers,
      },
      (upstreamRes) => {
        res.writeHead(upstreamRes.statusCode ?? 502, upstreamRes.headers);
        upstreamRes.pipe(res);
      },
    );
    forward.on('error', () => res.destroy());
    req.pipe(forward);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    faults,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
