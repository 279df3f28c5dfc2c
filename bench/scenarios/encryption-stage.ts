import { createReadStream, statSync } from 'node:fs';
import { finished } from 'node:stream/promises';
import { encryptStream } from '../../functions/core/encrypt';
import { loadKeys } from '../../functions/core/keys';
import type { BenchKeys } from '../keys';
import { measure, round } from '../measure';

const MB = 1_000_000;

export interface EncryptionStage {
  readonly inputBytes: number;
  /** encryptStream in this process, best of three. */
  readonly encryptStreamMBps: number;
  /** `gpg -z 0 -e` on the same file, best of three, when gpg is installed. */
  readonly gpgMBps?: number;
}

/** The encryption stage alone on the same bytes: encryptStream against `gpg -z 0`. */
export async function encryptionStage(
  plainFile: string,
  keys: BenchKeys,
  scratch: string,
): Promise<EncryptionStage> {
  const inputBytes = statSync(plainFile).size;
  const recipients = await loadKeys(keys.publicFile);
  const ours: number[] = [];
  for (let i = 0; i < 3; i++) {
    const started = performance.now();
    const encrypted = await encryptStream(createReadStream(plainFile, { highWaterMark: 64 * 1024 }), {
      mode: 'gpg',
      recipients,
    });
    // Drained chunk by chunk, as the upload takes them (an async iterator would join them into new Buffers).
    encrypted.resume();
    await finished(encrypted);
    ours.push((performance.now() - started) / 1000);
  }
  const theirs: number[] = [];
  for (let i = 0; keys.gnupgHome && i < 3; i++) {
    const measured = await measure(
      [
        'gpg',
        '--homedir',
        keys.gnupgHome,
        '--batch',
        '--yes',
        '--trust-model',
        'always',
        '-z',
        '0',
        '-e',
        '-r',
        keys.fingerprint,
        '-o',
        '/dev/null',
        plainFile,
      ],
      { scratch },
    );
    if (measured.code !== 0) throw new Error(`gpg exited ${measured.code}: ${measured.stderr}`);
    theirs.push(measured.wallSeconds);
  }
  return {
    inputBytes,
    encryptStreamMBps: round(inputBytes / MB / Math.min(...ours), 1),
    gpgMBps: theirs.length > 0 ? round(inputBytes / MB / Math.min(...theirs), 1) : undefined,
  };
}
