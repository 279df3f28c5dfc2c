import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join } from 'node:path';
import * as openpgp from 'openpgp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeyError } from '../functions/core/errors';
import {
  keysDocument,
  loadEncryption,
  loadKeys,
  recipientsList,
  selectRecipients,
} from '../functions/core/keys';
import { tempDir } from './support/temp';

async function pair(email: string, options: { date?: Date; keyExpirationTime?: number } = {}) {
  return await openpgp.generateKey({
    type: 'ecc',
    curve: 'curve25519Legacy',
    userIDs: [{ name: email.split('@')[0], email }],
    format: 'armored',
    ...options,
  });
}

describe('keys', () => {
  let dir: string;
  let ada: Awaited<ReturnType<typeof pair>>;
  let bob: Awaited<ReturnType<typeof pair>>;
  let adaFpr: string;
  let bobFpr: string;
  let server: Server;
  let base: string;
  let served = { keys: '', recipients: '' };

  beforeAll(async () => {
    dir = tempDir('dump-bag-keys-');
    ada = await pair('ada@example.com');
    bob = await pair('bob@example.com');
    adaFpr = (await openpgp.readKey({ armoredKey: ada.publicKey })).getFingerprint().toUpperCase();
    bobFpr = (await openpgp.readKey({ armoredKey: bob.publicKey })).getFingerprint().toUpperCase();
    server = createServer((req, res) => {
      const body =
        req.url === '/keys' ? served.keys : req.url === '/recipients' ? served.recipients : undefined;
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'text/plain' });
      res.end(body ?? 'not found');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('reads a file of several armored blocks with # comment lines, each key once', async () => {
    const file = join(dir, 'team.asc');
    writeFileSync(
      file,
      `# Ada\n# more words\n${ada.publicKey}\n\n# Bob\n${bob.publicKey}\n# Ada again\n${ada.publicKey}`,
    );
    const keys = await loadKeys(file);
    expect(keys.map((k) => k.fingerprint)).toEqual([adaFpr, bobFpr]);
    expect(keys[0]?.userId).toBe('ada <ada@example.com>');
  });

  it('reads a folder of .asc files, ignoring other files', async () => {
    const folder = join(dir, 'folder');
    mkdirSync(folder);
    writeFileSync(join(folder, 'b.asc'), bob.publicKey);
    writeFileSync(join(folder, 'a.asc'), ada.publicKey);
    writeFileSync(join(folder, 'README.md'), 'not a key');
    expect((await loadKeys(folder)).map((k) => k.fingerprint)).toEqual([adaFpr, bobFpr]);
  });

  it('selects by e-mail (any case) and by fingerprint with spaces; default is every key', async () => {
    const file = join(dir, 'both.asc');
    writeFileSync(file, `${ada.publicKey}\n${bob.publicKey}`);
    const keys = await loadKeys(file);
    expect((await selectRecipients(keys, ['BOB@example.com'])).map((k) => k.fingerprint)).toEqual([bobFpr]);
    const spaced = adaFpr.replace(/(.{4})/g, '$1 ').trim();
    expect((await selectRecipients(keys, [spaced])).map((k) => k.fingerprint)).toEqual([adaFpr]);
    expect((await selectRecipients(keys, [])).length).toBe(2);
    await expect(selectRecipients(keys, ['carol@example.com'])).rejects.toThrow(
      /carol@example.com has no public key/,
    );
    await expect(selectRecipients(keys, ['carol'])).rejects.toThrow(/neither a fingerprint nor an e-mail/);
  });

  it('/keys and /recipients of another bag round-trip, and are read at every run', async () => {
    const file = join(dir, 'central.asc');
    writeFileSync(file, `${ada.publicKey}\n${bob.publicKey}`);
    const keys = await loadKeys(file);
    served = { keys: keysDocument(keys), recipients: recipientsList(keys.slice(1)) };
    expect(served.keys).toMatch(
      new RegExp(`^# ada <ada@example.com> ${adaFpr}\\n-----BEGIN PGP PUBLIC KEY BLOCK-----`),
    );
    const first = await loadEncryption({
      encryption: 'gpg',
      publicKeys: `${base}/keys`,
      recipients: `${base}/recipients`,
    });
    expect(first.mode === 'gpg' && first.recipients.map((r) => r.fingerprint)).toEqual([bobFpr]);
    served = { ...served, recipients: recipientsList(keys) };
    const second = await loadEncryption({
      encryption: 'gpg',
      publicKeys: `${base}/keys`,
      recipients: `${base}/recipients`,
    });
    expect(second.mode === 'gpg' && second.recipients.map((r) => r.fingerprint)).toEqual([adaFpr, bobFpr]);
    await expect(
      loadEncryption({ encryption: 'gpg', publicKeys: `${base}/nothing`, recipients: adaFpr }),
    ).rejects.toThrow(/HTTP 404/);
  });

  it('fails closed on revoked and expired keys, private keys and empty files', async () => {
    const revoked = await openpgp.revokeKey({
      key: await openpgp.readPrivateKey({ armoredKey: (await pair('rev@example.com')).privateKey }),
      format: 'armored',
    });
    const revokedFile = join(dir, 'revoked.asc');
    writeFileSync(revokedFile, revoked.publicKey);
    await expect(loadEncryption({ encryption: 'gpg', publicKeys: revokedFile })).rejects.toThrow(
      /rev@example.com.*cannot encrypt/,
    );

    const old = await pair('old@example.com', {
      date: new Date(Date.now() - 5 * 86400_000),
      keyExpirationTime: 3600,
    });
    const expiredFile = join(dir, 'expired.asc');
    writeFileSync(expiredFile, old.publicKey);
    await expect(loadEncryption({ encryption: 'gpg', publicKeys: expiredFile })).rejects.toBeInstanceOf(
      KeyError,
    );

    const privateFile = join(dir, 'secret.asc');
    writeFileSync(privateFile, ada.privateKey);
    const error = (await loadEncryption({ encryption: 'gpg', publicKeys: privateFile }).catch(
      (e: unknown) => e,
    )) as Error;
    expect(error.message).toMatch(/holds a private key/);
    expect(error.message).not.toContain('BEGIN PGP');

    const empty = join(dir, 'empty.asc');
    writeFileSync(empty, '# nothing here\n');
    await expect(loadKeys(empty)).rejects.toThrow(/holds no public key/);
  });

  it('passphrase mode reads the file and refuses an empty one', async () => {
    const file = join(dir, 'pass');
    writeFileSync(file, 's3cret\n');
    expect(await loadEncryption({ encryption: 'passphrase', passphraseFile: file })).toEqual({
      mode: 'passphrase',
      passphrase: 's3cret',
    });
    writeFileSync(file, '');
    await expect(loadEncryption({ encryption: 'passphrase', passphraseFile: file })).rejects.toThrow(
      /is empty/,
    );
  });
});
