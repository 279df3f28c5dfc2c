import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { KeyError } from '../functions/core/errors';
import { loadEncryption, loadKeys, selectRecipients } from '../functions/core/keys';
import { GpgRing } from './support/gpg-keys';
import { tempDir } from './support/temp';

describe('key sources cannot be swapped', () => {
  const ring = new GpgRing();
  const dir = tempDir('dump-bag-keysrc-');
  let adaFpr: string;
  let bobFpr: string;
  let server: Server;
  let base: string;
  const requests: string[] = [];
  let served = { keys: '', recipients: '' };

  beforeAll(async () => {
    adaFpr = ring.key('ada@example.com');
    bobFpr = ring.key('bob@example.com');
    served = { keys: ring.publicKey(adaFpr) + ring.publicKey(bobFpr), recipients: adaFpr };
    // biome-ignore lint/complexity/noExcessiveCognitiveComplexity: one key server answering each hostile case (redirect, http, bad keys) the tests below need
    server = createServer((req, res) => {
      requests.push(req.url ?? '');
      if (req.url === '/moved') {
        res.writeHead(302, { location: '/keys' }).end();
        return;
      }
      const body =
        req.url === '/keys'
          ? served.keys
          : req.url === '/recipients'
            ? served.recipients
            : req.url === '/big'
              ? 'x'.repeat(5 * 1024 * 1024)
              : undefined;
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain' });
      res.end(body ?? 'not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));
  afterEach(() => {
    requests.length = 0;
    vi.restoreAllMocks();
  });

  const gpgFrom = (publicKeys: string, recipients?: string) =>
    loadEncryption({ encryption: 'gpg', publicKeys, recipients });

  it('pinned by fingerprint, a loopback http URL serves the keys', async () => {
    const encryption = await gpgFrom(`${base}/keys`, `${base}/recipients`);
    expect(encryption.mode === 'gpg' && encryption.recipients.map((r) => r.fingerprint)).toEqual([adaFpr]);
    const byList = await gpgFrom(`${base}/keys`, `${bobFpr},${adaFpr}`);
    expect(byList.mode === 'gpg' && byList.recipients.map((r) => r.fingerprint)).toEqual([bobFpr, adaFpr]);
  });

  it('refuses a non-loopback http key URL before any request', async () => {
    const fetchSpy = vi.spyOn(globalThis, 'fetch');
    await expect(gpgFrom('http://keys.example.com/keys', adaFpr)).rejects.toThrow(
      /\(DUMP_BAG_PUBLIC_KEYS\): http:\/\/keys.example.com must be an https:\/\/ URL/,
    );
    await expect(gpgFrom(`${base}/keys`, 'http://10.1.2.3/recipients')).rejects.toThrow(
      /\(DUMP_BAG_RECIPIENTS\): http:\/\/10.1.2.3 must be an https:\/\/ URL/,
    );
    // The keys URL above is loopback and was read; the recipients URL never was.
    expect(fetchSpy.mock.calls.map((call) => String(call[0]))).toEqual([`${base}/keys`]);
  });

  it('refuses a redirect, and follows none', async () => {
    await expect(gpgFrom(`${base}/moved`, adaFpr)).rejects.toThrow(/redirect \(HTTP 302\).*refused/);
    expect(requests).toEqual(['/moved']);
  });

  it('refuses an answer larger than the bound', async () => {
    await expect(gpgFrom(`${base}/big`, adaFpr)).rejects.toThrow(/more than the 4194304 bytes allowed/);
  });

  it('refuses a URL key source without recipients pinned by fingerprint, before any request', async () => {
    await expect(gpgFrom(`${base}/keys`)).rejects.toThrow(/DUMP_BAG_RECIPIENTS must pin the recipients/);
    await expect(gpgFrom(`${base}/keys`, 'ada@example.com')).rejects.toThrow(/is not a full fingerprint/);
    await expect(gpgFrom(`${base}/keys`, adaFpr.slice(-16))).rejects.toThrow(/is not a full fingerprint/);
    expect(requests).toEqual([]);
    served = { ...served, recipients: `${adaFpr},bob@example.com` };
    await expect(gpgFrom(`${base}/keys`, `${base}/recipients`)).rejects.toThrow(
      /lists "bob@example.com", not a full fingerprint/,
    );
    const stranger = new GpgRing();
    served = { ...served, recipients: stranger.key('eve@example.com') };
    await expect(gpgFrom(`${base}/keys`, `${base}/recipients`)).rejects.toThrow(/has no public key/);
    served = { ...served, recipients: adaFpr };
  });

  it('an unsigned user ID on another key does not make its e-mail select that key', async () => {
    // Bob's user ID packet without Bob's self-signature, spliced into Ada's key as an attacker could.
    const ada = await openpgp.readKey({ armoredKey: ring.publicKey(adaFpr) });
    const bob = await openpgp.readKey({ armoredKey: ring.publicKey(bobFpr) });
    const packets = ada.toPacketList();
    const bobUserId = bob.users[0]?.userID;
    if (!bobUserId) throw new Error('bob has no user ID');
    packets.splice(3, 0, bobUserId);
    const forged = openpgp.armor(openpgp.enums.armor.publicKey, packets.write());
    const forgedFile = join(dir, 'forged.asc');
    writeFileSync(forgedFile, forged);
    const keys = await loadKeys(forgedFile);
    expect(keys[0]?.key.users.map((u) => u.userID?.email)).toContain('bob@example.com');
    await expect(selectRecipients(keys, ['bob@example.com'])).rejects.toThrow(
      /bob@example.com has no public key/,
    );
    expect((await selectRecipients(keys, ['ada@example.com'])).map((k) => k.fingerprint)).toEqual([adaFpr]);

    const both = join(dir, 'forged-and-bob.asc');
    writeFileSync(both, `${forged}\n${ring.publicKey(bobFpr)}`);
    const chosen = await selectRecipients(await loadKeys(both), ['bob@example.com']);
    expect(chosen.map((k) => k.fingerprint)).toEqual([bobFpr]);
  });

  it('a secret key in a key file or anywhere in a key folder stops the run, naming the file', async () => {
    const binary = join(dir, 'ada.gpg');
    writeFileSync(binary, ring.secretKey(adaFpr));
    const error = await gpgFrom(binary).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(KeyError);
    expect((error as Error).message).toContain(`${binary} holds a private key`);

    const folder = join(dir, 'folder');
    mkdirSync(folder);
    writeFileSync(join(folder, 'ada.asc'), ring.publicKey(adaFpr));
    expect((await loadKeys(folder)).map((k) => k.fingerprint)).toEqual([adaFpr]);
    // Not a key file by its name, still a secret key handed around with the public ones.
    writeFileSync(join(folder, 'notes.txt'), ring.secretKey(bobFpr, true));
    const inFolder = (await gpgFrom(folder).catch((e: unknown) => e)) as Error;
    expect(inFolder.message).toContain(`${join(folder, 'notes.txt')} holds a private key`);
    expect(inFolder.message).not.toContain('BEGIN PGP');

    served = { ...served, keys: ring.secretKey(adaFpr, true).toString() };
    await expect(gpgFrom(`${base}/keys`, adaFpr)).rejects.toThrow(/\/keys holds a private key/);
    served = { ...served, keys: ring.publicKey(adaFpr) + ring.publicKey(bobFpr) };
  });
});
