/**
 * The checked download behind `get` (download, SHA-256, MDC; nothing released) at a given network speed:
 *
 *   node --import tsx bench/paced-download.ts [--rounds 3] [--mbps 50] FILE.gpg [OTHER_CHECKOUT]
 *
 * FILE.gpg is a dump the bench's key can read (the local S3 server keeps the bench's under
 * .dump-bag/bench/s3/). A server in a process of its own sends it over loopback at `--mbps` MB/s
 * (0: as fast as it can), as a laptop's or a region's link would. Each round runs this checkout's
 * `withVerifiedDump`, then OTHER_CHECKOUT's (e.g. an older commit unpacked with `git archive`),
 * and prints the wall time of each.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import * as openpgp from 'openpgp';
import type { withVerifiedDump } from '../cli/client/verified-dump';
import type { DumpRecord } from '../functions/core/catalog';
import { median, range } from './measure';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: 'string', default: '3' }, mbps: { type: 'string', default: '50' } },
});
const [file, other] = positionals;
const rounds = Number(values.rounds);
const mbps = Number(values.mbps);
if (!file || !(rounds >= 1) || !(mbps >= 0)) {
  console.error('usage: bench/paced-download.ts [--rounds N] [--mbps MB/s] FILE.gpg [OTHER_CHECKOUT]');
  process.exit(2);
}

/** The server: answers every GET with FILE, paced to `mbps` (a child, so that it costs the client's thread nothing). */
const SERVER = `
const { createReadStream } = require('node:fs');
const { createServer } = require('node:http');
const [file, mbps, bytes] = process.argv.slice(1);
const server = createServer(async (_request, response) => {
  response.writeHead(200, { 'content-length': bytes });
  const started = Date.now();
  let sent = 0;
  for await (const chunk of createReadStream(file, { highWaterMark: 256 * 1024 })) {
    if (!response.write(chunk)) await new Promise((r) => response.once('drain', r));
    sent += chunk.length;
    const due = Number(mbps) > 0 ? started + sent / (Number(mbps) * 1000) - Date.now() : 0;
    if (due > 0) await new Promise((r) => setTimeout(r, due));
  }
  response.end();
});
server.listen(0, '127.0.0.1', () => console.log(server.address().port));
`;

async function startServer(bytes: number): Promise<{ url: string; stop: () => void }> {
  const child = spawn(process.execPath, ['-e', SERVER, file as string, String(mbps), String(bytes)], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const port = await new Promise<string>((done) => child.stdout.once('data', (d) => done(String(d).trim())));
  return { url: `http://127.0.0.1:${port}/dump`, stop: () => child.kill() };
}

async function sha256Of(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

const bytes = statSync(file).size;
const record = {
  bytes,
  sha256: await sha256Of(file),
  encryption: 'gpg',
  recipients: [],
} as unknown as DumpRecord;
const secret = readFileSync(join(root, '.dump-bag', 'bench', 'keys', 'bench-secret.asc'), 'utf8');
const decryption = { mode: 'gpg', keys: [await openpgp.readPrivateKey({ armoredKey: secret })] } as const;
const checkouts = [root, ...(other ? [resolve(other)] : [])];
const releases: (typeof withVerifiedDump)[] = [];
for (const checkout of checkouts) {
  const module = join(checkout, 'cli', 'client', 'verified-dump.ts');
  releases.push((await import(pathToFileURL(module).href)).withVerifiedDump);
}
const server = await startServer(bytes);
const seconds: number[][] = checkouts.map(() => []);
try {
  for (let round = 0; round < rounds; round++) {
    for (const [i, release] of releases.entries()) {
      const started = performance.now();
      await release({ url: server.url, record, decryption, workDir: tmpdir() }, (archive) => {
        // Only the checks before the release are timed.
        archive.destroy();
        return Promise.resolve();
      });
      const wall = (performance.now() - started) / 1000;
      seconds[i]?.push(wall);
      console.error(`[paced] ${round + 1}/${rounds} ${checkouts[i]}: ${wall.toFixed(2)} s`);
    }
  }
} finally {
  server.stop();
}
const floor = bytes / (mbps * 1e6);
for (const [i, checkout] of checkouts.entries()) {
  const runs = seconds[i] ?? [];
  console.log(
    `${checkout}: ${median(runs).toFixed(2)} s (${range(runs)})${mbps > 0 ? `, the transfer alone ${floor.toFixed(2)} s` : ''}`,
  );
}
