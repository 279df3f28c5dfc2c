import { NotFoundError } from '../../functions/core/errors';
import { formatDuration, formatSize, type ListedDump, ranOn } from '../../functions/core/listing';
import { clientFromEnv } from '../client/bag-client';
import { neededMajor } from '../client/restore-compat';
import { pinnedSigningKey, recordSignatureState } from '../client/signing-pin';
import type { Parsed } from '../command-line';
import type { commandSpecs } from '../command-specs';

/**
 * A name or user ID from the bag, safe to print on a terminal: control and format characters (escape
 * sequences, bidi overrides) are shown as `\xNN` / `\u{N}` instead of acting on the terminal.
 */
export function printable(text: string): string {
  return String(text).replace(/[\p{Cc}\p{Cf}\u2028\u2029]/gu, (c) => {
    const code = c.codePointAt(0) as number;
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

export async function run({
  values,
  positionals,
}: Parsed<typeof commandSpecs.list.options>): Promise<number> {
  const client = clientFromEnv(values.url);
  const listed = await client.list(positionals[0]);
  // The signature state by this reader's own pin, not the bag's word; a bag without a key shows unchecked.
  const pin = await pinnedSigningKey(client).catch((error: unknown) => {
    if (error instanceof NotFoundError) return undefined;
    throw error;
  });
  const dumps = listed.map((d) => ({ ...d, signatureState: recordSignatureState(d, pin) }));
  if (values.json) {
    // One shape whatever the arguments: the dumps, as GET /dumps lists them (globals: GET /globals).
    console.log(JSON.stringify(dumps, null, 2));
    return 0;
  }
  if (dumps.length === 0) {
    console.error(positionals[0] === undefined ? 'no dumps in the bag' : 'no dumps of this database');
  } else {
    printTable(dumps);
  }
  // The globals after the table, so the table's first line stays its header for whoever parses it.
  const globals = positionals[0] === undefined ? await client.globals() : [];
  const latest = globals[0];
  if (latest !== undefined) {
    console.log(
      `${dumps.length > 0 ? '\n' : ''}globals: ${globals.length} dump(s), newest ${printable(latest.id)} (${formatSize(latest.bytes)}): dump-bag get --globals`,
    );
  }
  return 0;
}

function printTable(dumps: readonly (ListedDump & { signatureState: string })[]): void {
  const now = Date.now();
  const rows = dumps.map((d) => [
    printable(d.database),
    printable(d.id),
    formatSize(d.bytes),
    printable(d.trigger),
    ranOn(d),
    d.encryption === 'gpg'
      ? d.recipients.map((r) => printable(r.userId || r.fingerprint)).join('; ')
      : d.encryption,
    d.signatureState === 'valid' ? 'signed' : d.signatureState.toUpperCase(),
    d.expiresAt === null ? 'kept' : `deleted in ${formatDuration(new Date(d.expiresAt).getTime() - now)}`,
    restoreColumn(d),
  ]);
  const header = [
    'DATABASE',
    'ID',
    'SIZE',
    'TRIGGER',
    'RUNNER',
    'FOR',
    'SIGNATURE',
    'RETENTION',
    'PG_RESTORE',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  for (const r of [header, ...rows]) {
    console.log(
      r
        .map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i] ?? 0)))
        .join('  ')
        .trimEnd(),
    );
  }
}

/** `>= 17 (1.16.0)`: the oldest pg_restore that reads the archive, with its format; `?` for older records. */
function restoreColumn(d: { restoreMajor?: unknown; archiveVersion?: unknown }): string {
  const major = neededMajor(d as { restoreMajor?: number });
  if (major === undefined) return '?';
  const version =
    typeof d.archiveVersion === 'string' ? ` (${printable(d.archiveVersion.slice(0, 20))})` : '';
  return `>= ${major}${version}`;
}
