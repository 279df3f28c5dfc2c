import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import * as openpgp from 'openpgp';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  createEncryptor,
  definiteLength,
  type EncryptorLayout,
  encryptStream,
} from '../functions/core/encrypt';
import type { Encryption } from '../functions/core/encryption';
import { loadKeys } from '../functions/core/keys';
import { openSeipd } from '../functions/core/seipd-reader';
import { type GpgIdentity, gpgDecrypt, gpgIdentity } from './support/gpg';
import { gnupgHome, tempDir } from './support/temp';

/** Sizes around every boundary: blocks (16), the first partial's minimum (512), length encodings (192, 8384). */
const SIZES = [0, 1, 15, 16, 17, 191, 192, 511, 512, 513, 8383, 8384, 65_535, 65_536, 65_537, 300_001];
/** The default layout, and the smallest one so that every size above crosses many part boundaries. */
const LAYOUTS: EncryptorLayout[] = [{}, { literalBits: 9, packetBits: 9, pieceBytes: 48 }];

/** Feeds the input in uneven pieces, as a pipe would. */
function piecewise(data: Buffer, sizes = [7777, 1, 4096, 333]): Readable {
  const pieces: Buffer[] = [];
  for (let offset = 0, i = 0; offset < data.length; i++) {
    const size = sizes[i % sizes.length] as number;
    pieces.push(data.subarray(offset, offset + size));
    offset += size;
  }
  return Readable.from(pieces);
}

async function encrypt(data: Buffer, encryption: Encryption, layout: EncryptorLayout = {}): Promise<Buffer> {
  const stream =
    encryption.mode === 'none'
      ? piecewise(data)
      : piecewise(data).pipe(await createEncryptor(encryption, layout));
  const out: Buffer[] = [];
  for await (const chunk of stream) out.push(chunk as Buffer);
  return Buffer.concat(out);
}

function secretKey(identity: GpgIdentity): Promise<openpgp.PrivateKey> {
  const armoredKey = execFileSync('gpg', [
    '--homedir',
    identity.home,
    '--batch',
    '--armor',
    '--export-secret-keys',
    identity.fingerprint,
  ]).toString();
  return openpgp.readPrivateKey({ armoredKey });
}

async function openpgpDecrypt(message: Buffer, options: { key?: openpgp.PrivateKey; password?: string }) {
  const result = await openpgp.decrypt({
    message: await openpgp.readMessage({ binaryMessage: message }),
    format: 'binary',
    ...(options.key ? { decryptionKeys: options.key } : { passwords: [options.password as string] }),
  });
  return Buffer.from(result.data as Uint8Array);
}

describe('OpenPGP encryption (native SEIPD writer)', () => {
  let rsa: GpgIdentity;
  let curve: GpgIdentity;
  let both: Encryption;

  beforeAll(async () => {
    rsa = gpgIdentity('rsa', 'enc-rsa@example.com');
    curve = gpgIdentity('cv25519', 'enc-curve@example.com');
    const file = join(tempDir('dump-bag-enc-'), 'keys.asc');
    writeFileSync(file, `${rsa.publicKey}\n${curve.publicKey}`);
    both = { mode: 'gpg', recipients: await loadKeys(file) };
  });

  it('writes lengths as RFC 4880 4.2.3 shows them', () => {
    expect([...definiteLength(100)]).toEqual([0x64]);
    expect([...definiteLength(1723)]).toEqual([0xc5, 0xfb]);
    expect([...definiteLength(100_000)]).toEqual([0xff, 0x00, 0x01, 0x86, 0xa0]);
    expect([...definiteLength(8383)]).toEqual([0xdf, 0xff]);
    expect([...definiteLength(8384)]).toEqual([0xff, 0x00, 0x00, 0x20, 0xc0]);
  });

  for (const layout of LAYOUTS) {
    it(`GnuPG and openpgp.js decrypt every size, for RSA and Curve25519 recipients (layout ${JSON.stringify(layout)})`, async () => {
      const keys = { rsa: await secretKey(rsa), curve: await secretKey(curve) };
      for (const [i, size] of SIZES.entries()) {
        const data = randomBytes(size);
        const message = await encrypt(data, both, layout);
        // Alternate which recipient uses which tool: each decrypts alone, with only its own key.
        const [byGpg, byOpenpgp] = i % 2 === 0 ? [rsa, keys.curve] : [curve, keys.rsa];
        expect((await gpgDecrypt(byGpg.home, message)).equals(data), `gpg, ${size} bytes`).toBe(true);
        expect(
          (await openpgpDecrypt(message, { key: byOpenpgp })).equals(data),
          `openpgp, ${size} bytes`,
        ).toBe(true);
      }
    });
  }

  it('passphrase mode decrypts with gpg --passphrase and with openpgp.js', async () => {
    const passphrase = 'correct horse battery staple ✓';
    for (const size of [0, 513, 300_001]) {
      const data = randomBytes(size);
      const message = await encrypt(
        data,
        { mode: 'passphrase', passphrase },
        { literalBits: 9, packetBits: 10 },
      );
      const home = gnupgHome();
      const plain = await gpgDecrypt(home, message, [
        '--pinentry-mode',
        'loopback',
        '--passphrase',
        passphrase,
      ]);
      expect(plain.equals(data)).toBe(true);
      expect((await openpgpDecrypt(message, { password: passphrase })).equals(data)).toBe(true);
    }
  });

  it('is what GnuPG 2.2 expects: AES-256, a SEIPD v1 packet with MDC, a binary literal packet', async () => {
    const message = await encrypt(randomBytes(100_000), both);
    const listed = spawnSync('gpg', ['--homedir', curve.home, '--batch', '--list-packets', '-vv'], {
      input: message,
    });
    const text = `${listed.stdout}${listed.stderr}`;
    expect(listed.status).toBe(0);
    expect(text).toMatch(/:pubkey enc packet: version 3, algo 1,/);
    expect(text).toMatch(/:pubkey enc packet: version 3, algo 18,/);
    expect(text).toMatch(/:encrypted data packet:[\s\S]*mdc_method: 2/);
    expect(text).toMatch(/AES256/);
    expect(text).toMatch(/:literal data packet:[\s\S]*mode b/);
  });

  it('falls back to AES-128 for a key whose preferences do not list AES-256, as GnuPG would', async () => {
    const home = gnupgHome();
    writeFileSync(
      join(home, 'params'),
      [
        'Key-Type: EDDSA',
        'Key-Curve: ed25519',
        'Subkey-Type: ECDH',
        'Subkey-Curve: cv25519',
        'Name-Real: older preferences',
        'Name-Email: aes128@example.com',
        'Preferences: AES128 SHA256 ZLIB',
        'Expire-Date: 0',
        '%no-protection',
        '%commit',
        '',
      ].join('\n'),
    );
    execFileSync('gpg', ['--homedir', home, '--batch', '--gen-key', join(home, 'params')], {
      stdio: 'ignore',
    });
    const file = join(home, 'key.asc');
    writeFileSync(
      file,
      execFileSync('gpg', ['--homedir', home, '--batch', '--armor', '--export', 'aes128@example.com']),
    );
    const data = randomBytes(20_000);
    const message = await encrypt(data, { mode: 'gpg', recipients: await loadKeys(file) });
    const decrypted = spawnSync('gpg', ['--homedir', home, '--batch', '-v', '--decrypt'], { input: message });
    expect(decrypted.status).toBe(0);
    expect(decrypted.stdout.equals(data)).toBe(true);
    // GnuPG calls AES-128 plain "AES".
    expect(decrypted.stderr.toString()).toMatch(/gpg: AES encrypted data/);
    const usual = spawnSync('gpg', ['--homedir', rsa.home, '--batch', '-v', '--decrypt'], {
      input: await encrypt(data, both),
    });
    expect(usual.stderr.toString()).toMatch(/gpg: AES256 encrypted data/);
  });

  it('a changed byte anywhere in the encrypted data fails decryption in both tools', async () => {
    const data = randomBytes(70_000);
    const message = await encrypt(data, both);
    for (const at of [message.length - 1, message.length - 30, Math.floor(message.length / 2)]) {
      const tampered = Buffer.from(message);
      tampered[at] = (tampered[at] as number) ^ 0x01;
      await expect(gpgDecrypt(rsa.home, tampered)).rejects.toThrow();
      await expect(openpgpDecrypt(tampered, { key: await secretKey(curve) })).rejects.toThrow();
    }
  });

  it('carries an error of its input to its output, so a failing pg_dump fails the upload', async () => {
    const input = new Readable({ read() {} });
    const output = await encryptStream(input, both);
    const failure = new Error('pg_dump died');
    input.push(randomBytes(1000));
    setImmediate(() => input.destroy(failure));
    await expect(
      (async () => {
        for await (const _ of output) {
          // drain
        }
      })(),
    ).rejects.toBe(failure);
  });

  describe('the native reader (functions/core/seipd-reader.ts)', () => {
    async function read(message: Buffer, secrets: Parameters<typeof openSeipd>[1], sizes?: number[]) {
      const opened = await openSeipd(piecewise(message, sizes), secrets);
      if (!opened.plaintext) throw new Error('the native reader declined the message');
      const out: Buffer[] = [];
      for await (const chunk of opened.plaintext) out.push(chunk as Buffer);
      return Buffer.concat(out);
    }

    for (const layout of LAYOUTS) {
      it(`reads back every size, whatever the pieces it is fed in (layout ${JSON.stringify(layout)})`, async () => {
        const key = await secretKey(curve);
        for (const size of SIZES) {
          const data = randomBytes(size);
          const message = await encrypt(data, both, layout);
          // Pieces of 1 and 3 bytes split every length header and the MDC across chunks.
          for (const sizes of [undefined, [1, 3, 65_536]]) {
            expect(
              (await read(message, { decryptionKeys: [key] }, sizes)).equals(data),
              `${size} bytes`,
            ).toBe(true);
          }
        }
      });
    }

    it('reads passphrase messages, and refuses a wrong passphrase before any plaintext', async () => {
      const data = randomBytes(100_000);
      const message = await encrypt(data, { mode: 'passphrase', passphrase: 'right' });
      expect((await read(message, { passwords: ['right'] })).equals(data)).toBe(true);
      await expect(read(message, { passwords: ['wrong'] })).rejects.toThrow(/session key/);
    });

    it('fails on any changed byte of the encrypted data, at the latest at its end', async () => {
      const key = await secretKey(rsa);
      const data = randomBytes(70_000);
      const message = await encrypt(data, both);
      for (const at of [
        message.length - 1,
        message.length - 21,
        message.length - 30,
        Math.floor(message.length / 2),
      ]) {
        const tampered = Buffer.from(message);
        tampered[at] = (tampered[at] as number) ^ 0x01;
        await expect(read(tampered, { decryptionKeys: [key] })).rejects.toThrow(/MDC|damaged|packet/);
      }
      await expect(read(message.subarray(0, message.length - 10), { decryptionKeys: [key] })).rejects.toThrow(
        /ends early|damaged/,
      );
    });

    it('gives a message of another shape back, whole, for openpgp.js to read (a compressed one from GnuPG)', async () => {
      const data = randomBytes(50_000);
      const encrypted = spawnSync(
        'gpg',
        [
          '--homedir',
          curve.home,
          '--batch',
          '--trust-model',
          'always',
          '-z',
          '6',
          '-e',
          '-r',
          curve.fingerprint,
        ],
        { input: data },
      );
      expect(encrypted.status).toBe(0);
      const key = await secretKey(curve);
      const opened = await openSeipd(piecewise(encrypted.stdout), { decryptionKeys: [key] });
      expect(opened.plaintext).toBeUndefined();
      if (opened.plaintext) return;
      const replayed: Buffer[] = [];
      for await (const chunk of opened.replay) replayed.push(chunk as Buffer);
      expect(Buffer.concat(replayed).equals(encrypted.stdout)).toBe(true);
      expect((await openpgpDecrypt(Buffer.concat(replayed), { key })).equals(data)).toBe(true);
    });
  });
});
