import {
  closeSync,
  copyFileSync,
  existsSync,
  openSync,
  readdirSync,
  readSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { Annotations } from 'aws-cdk-lib';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import { Construct, type IConstruct } from 'constructs';
import { MAX_KEYS_BYTES } from '../../functions/core/key-fetch';
import { holdsSecretKey } from '../../functions/core/secret-key';
import { SETTINGS } from '../../functions/core/settings';
import { REPO_ROOT } from './bag-function';
import { fileLayerCode } from './file-layer';
import { checkProp, optional } from './validate';

/** Where the keys layer puts the key files in the function's file system. */
export const KEYS_MOUNT = '/opt/dump-bag-keys';
/** The files the core reads as keys (see functions/core/keys.ts). */
const KEY_FILE = /\.(asc|pub|key|gpg|pgp)$/i;

export interface PublicKeysProps {
  /** A folder of armored public keys (`.asc`), relative to the repository root; shipped as a layer. */
  readonly folder?: string;
  /** A central bag's `/keys` URL (https), read at every run. */
  readonly url?: string;
  /** A comma list of fingerprints or e-mail addresses among the keys, or a central bag's `/recipients` URL (https). @default every key */
  readonly recipients?: string;
}

function isUrl(value: string): boolean {
  return /^[a-z]+:\/\//i.test(value);
}

function keyFiles(folder: string): string[] {
  return readdirSync(folder)
    .filter((name) => !name.startsWith('.') && KEY_FILE.test(name))
    .sort();
}

/** A folder relative to the repository root, or absolute. */
function folderPath(folder: string): string {
  return isAbsolute(folder) ? folder : join(REPO_ROOT, folder);
}

function isFolder(path: string): boolean {
  return existsSync(path) && statSync(path).isDirectory();
}

/** The first bytes of a file, as many as the core reads of a key file. */
function head(file: string): Buffer {
  const fd = openSync(file, 'r');
  try {
    const buffer = Buffer.alloc(MAX_KEYS_BYTES);
    return buffer.subarray(0, readSync(fd, buffer, 0, buffer.length, 0));
  } finally {
    closeSync(fd);
  }
}

/** The first file of the folder holding a secret key, whatever its name: the layer must never carry one. */
function secretKeyFile(folder: string): string | undefined {
  return readdirSync(folder, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(folder, entry.name))
    .find((file) => holdsSecretKey(head(file)));
}

/** Recipients pinned by full fingerprint (v4 or v6), or a /recipients URL (the core checks its entries). */
function pinsRecipients(recipients: string | undefined): boolean {
  if (!recipients) return false;
  if (isUrl(recipients)) return true;
  return recipients
    .split(',')
    .map((entry) => entry.replace(/\s+/g, '').replace(/^0x/i, ''))
    .filter(Boolean)
    .every((entry) => /^([0-9A-F]{40}|[0-9A-F]{64})$/i.test(entry));
}

/** Throws InvalidPropError, naming the prop and the fix, for props that cannot work. */
export function validatePublicKeysProps(scope: IConstruct, props: PublicKeysProps): void {
  checkProp(scope, {
    prop: 'url',
    value: props.url,
    valid: !(props.url && props.folder),
    rule: 'cannot go with `folder`',
    fix: "give `folder` (keys in the repository) or `url` (a central bag's /keys), not both (context keysFolder / keysUrl)",
  });
  checkProp(scope, {
    prop: 'folder',
    value: props.folder,
    valid: Boolean(props.folder || props.url),
    rule: 'or `url` must be given: dumps are never stored unencrypted by the stack',
    fix: "give `folder` (a folder of .asc public keys, context keysFolder) or `url` (a central bag's /keys, context keysUrl)",
  });
  for (const prop of ['url', 'recipients'] as const) {
    checkProp(scope, {
      prop,
      value: props[prop],
      valid: optional((value) => !isUrl(value) || /^https:\/\//i.test(value)),
      rule: 'must be an https:// URL: over plain http anyone on the path could swap in their own key',
      fix: `give the bag's https:// URL (context ${prop === 'url' ? 'keysUrl' : 'recipients'})`,
    });
  }
  checkProp(scope, {
    prop: 'folder',
    value: props.folder,
    valid: optional((folder) => isFolder(folderPath(folder))),
    rule: 'must be an existing folder',
    fix: `create it with the public keys (gpg --armor --export you@example.com > ${props.folder}/you.asc)`,
  });
  const leaked =
    props.folder && isFolder(folderPath(props.folder)) ? secretKeyFile(folderPath(props.folder)) : undefined;
  checkProp(scope, {
    prop: 'folder',
    value: props.folder,
    valid: leaked === undefined,
    rule: `must hold public keys only: ${leaked} holds a private key (secret key material)`,
    fix: 'remove that file, give public keys only (gpg --armor --export <fingerprint>, never --export-secret-keys), and consider that key exposed',
  });
  checkProp(scope, {
    prop: 'recipients',
    value: props.recipients,
    valid: !props.url || pinsRecipients(props.recipients),
    rule: "must pin the readers when the keys come from `url`: their full fingerprints, comma-separated, or the central bag's /recipients URL",
    fix: 'otherwise whoever answers for the URL chooses who can read the dumps; list the fingerprints (gpg --fingerprint) in context recipients',
  });
}

/**
 * Whose public keys the dumps are encrypted for, the same for the plan, dump and API functions:
 * a folder of the repository shipped as a small layer at /opt/dump-bag-keys, or a central bag's
 * URLs, which the functions read at every run.
 */
export class PublicKeys extends Construct {
  /** The layer holding the key files, with `folder`. */
  readonly layer?: lambda.LayerVersion;
  /** DUMP_BAG_PUBLIC_KEYS as the functions see it. */
  readonly publicKeys: string;
  readonly recipients?: string;

  constructor(scope: Construct, id: string, props: PublicKeysProps) {
    super(scope, id);
    validatePublicKeysProps(this, props);
    this.recipients = props.recipients;

    if (props.url) {
      this.publicKeys = props.url;
      return;
    }
    const folder = folderPath(props.folder as string);
    if (keyFiles(folder).length === 0) {
      Annotations.of(this).addWarningV2(
        'dump-bag:keys-folder-empty',
        `PublicKeys: ${props.folder} holds no .asc key: every backup will fail (encryption fails closed) until one is added`,
      );
    }
    this.publicKeys = KEYS_MOUNT;
    this.layer = new lambda.LayerVersion(this, 'Layer', {
      description: `Dump Bag public keys from ${props.folder}, under ${KEYS_MOUNT}`,
      code: fileLayerCode({
        source: folder,
        mount: KEYS_MOUNT,
        copy: (target, outputDir) => {
          for (const name of keyFiles(folder)) copyFileSync(join(folder, name), join(target, name));
          // An asset must not be empty; the core reports a folder without keys by itself.
          writeFileSync(join(outputDir, 'README.txt'), 'Public keys Dump Bag encrypts for.\n');
        },
      }),
    });
  }

  /** DUMP_BAG_PUBLIC_KEYS and DUMP_BAG_RECIPIENTS, and the keys layer when the keys are files. */
  bind(fn: lambda.Function): void {
    fn.addEnvironment(SETTINGS.publicKeys.env, this.publicKeys);
    if (this.recipients) fn.addEnvironment(SETTINGS.recipients.env, this.recipients);
    if (this.layer) fn.addLayers(this.layer);
  }
}
