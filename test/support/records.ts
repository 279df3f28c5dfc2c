import type { DumpRecord } from '../../functions/core/catalog';

/** The record of a dump whose bytes no test reads: valid in form, naming what `of` says. */
export function placeholderRecord(
  of: Pick<DumpRecord, 'database' | 'id' | 'key' | 'encryption'>,
): DumpRecord {
  return {
    database: of.database,
    id: of.id,
    key: of.key,
    createdAt: new Date().toISOString(),
    trigger: 'schedule',
    encryption: of.encryption,
    recipients: [],
    pgDumpVersion: '15',
    serverVersion: '15',
    compression: 'gzip:1',
    sha256: '0'.repeat(64),
    bytes: 1,
    seconds: 1,
  };
}
