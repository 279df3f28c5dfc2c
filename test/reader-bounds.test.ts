import { Readable } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { clientFromEnv } from '../cli/client/bag-client';
import { createWorkFile } from '../cli/client/work-file';
import { defaultFileName } from '../cli/commands/get';
import { printable } from '../cli/commands/list';
import type { DumpRecord } from '../functions/core/catalog';
import { openSeipd, SeipdShapeError } from '../functions/core/seipd-reader';
import { tempDir } from './support/bag';

/** A new-format packet header with a five-byte length (RFC 9580 §4.2.1.3). */
function header(tag: number, length: number): Buffer {
  const h = Buffer.alloc(6);
  h[0] = 0xc0 | tag;
  h[1] = 0xff;
  h.writeUInt32BE(length, 2);
  return h;
}

/** A hostile object: `head`, then zero bytes up to `total`, made lazily; counts what the reader pulled. */
function hostile(head: Buffer, total: number) {
  const seen = { bytes: 0 };
  const stream = Readable.from(
    // biome-ignore lint/suspicious/useAwait: an async source, as a download is: the reader must stop it mid-stream.
    (async function* () {
      seen.bytes += head.length;
      yield head;
      const piece = Buffer.alloc(64 * 1024);
      for (let sent = head.length; sent < total; sent += piece.length) {
        seen.bytes += piece.length;
        yield piece;
      }
    })(),
  );
  return { stream, seen };
}

describe('the reader against hostile objects', () => {
  it('a key packet declaring 1 GiB fails within a second, having read almost nothing', async () => {
    const before = process.memoryUsage().rss;
    const { stream, seen } = hostile(header(1, 2 ** 30), 2 ** 30 + 6);
    const started = Date.now();
    await expect(openSeipd(stream, { passwords: ['x'] })).rejects.toThrow(SeipdShapeError);
    expect(Date.now() - started).toBeLessThan(1000);
    expect(seen.bytes).toBeLessThan(1024 * 1024);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 1024 * 1024);
    expect(stream.destroyed).toBe(true);
  });

  it('key packets are bounded one by one (64 KiB) and in all (1 MiB), fed in 16-byte pieces in linear time', async () => {
    await expect(
      openSeipd(hostile(header(1, 64 * 1024 + 1), 200_000).stream, { passwords: ['x'] }),
    ).rejects.toThrow(/declares 65537 bytes, over the 65536 allowed/);

    // 18 packets of 60 KiB: each is allowed, together they are over 1 MiB. In 16-byte pieces, a reader
    // that joined or re-parsed everything read on each chunk would copy some 35 GB here (minutes).
    const packet = Buffer.concat([header(3, 60 * 1024), Buffer.alloc(60 * 1024)]);
    const all = Buffer.concat(Array.from({ length: 18 }, () => packet));
    const pieces = Readable.from(
      (function* () {
        for (let i = 0; i < all.length; i += 16) yield all.subarray(i, i + 16);
      })(),
    );
    const started = Date.now();
    await expect(openSeipd(pieces, { passwords: ['x'] })).rejects.toThrow(/exceed 1048576 bytes in all/);
    expect(Date.now() - started).toBeLessThan(15_000);
  });

  it('the free space for the work file is checked first, naming the bytes, the folder and DUMP_BAG_WORK_DIR', async () => {
    const dir = tempDir();
    await expect(createWorkFile(dir, 10 ** 15)).rejects.toThrow(
      new RegExp(`needs 1000000000000000 bytes .* in ${dir}, which has \\d+ free: set DUMP_BAG_WORK_DIR`),
    );
    await expect(createWorkFile(`${dir}/missing`, 1)).rejects.toThrow(/ENOENT .*DUMP_BAG_WORK_DIR/);
    const work = await createWorkFile(dir, 1);
    expect(work.path.startsWith(`${dir}/.dump-bag-`)).toBe(true);
  });
});

describe('names and tokens from the bag', () => {
  const record = (id: string, database = 'shop') => ({ id, database, encryption: 'gpg' }) as DumpRecord;

  it('get refuses a record id that is not an id, and names files inside the folder', () => {
    for (const bad of [
      '/../..',
      '../../etc/passwd',
      '20260101-000000/../../x',
      '',
      'latest',
      '20260101-000000\n',
    ]) {
      expect(() => defaultFileName(record(bad), false), JSON.stringify(bad)).toThrow(/malformed dump id/);
    }
    expect(defaultFileName(record('20260101-000000'), false)).toBe('shop-20260101-000000.pgdump');
    expect(defaultFileName(record('20260101-000000-a1b2', '../../up'), true)).toBe(
      '_.._up-20260101-000000-a1b2.pg.gpg',
    );
  });

  it('list escapes control and format characters in names and user IDs', () => {
    expect(printable('db\x1b[2J\x07 é\u202eevil\r\n')).toBe('db\\x1b[2J\\x07 é\\u{202e}evil\\x0d\\x0a');
    expect(printable('client "src" é')).toBe('client "src" é');
  });

  it('a bearer token is refused over plain http to another host, allowed on loopback and https', () => {
    const token = { DUMP_BAG_TOKEN: 'secret-token' };
    expect(() => clientFromEnv('http://bag.example.com', token)).toThrow(
      /DUMP_BAG_TOKEN would travel in clear text to bag\.example\.com: use the bag's https:\/\/ URL/,
    );
    expect(() => clientFromEnv('http://10.0.0.5:8080', token)).toThrow(/clear text/);
    for (const ok of [
      'https://bag.example.com',
      'http://127.0.0.1:8080',
      'http://[::1]:8080',
      'http://localhost',
    ]) {
      expect(clientFromEnv(ok, token).options.token).toBe('secret-token');
    }
    // Without a token, plain http stays allowed (a local serve, a test).
    expect(clientFromEnv('http://bag.example.com', {}).options.token).toBeUndefined();
  });
});
