import { SETTINGS } from '../functions/core/settings';
import { type CommandSpec, command } from './command-line';

const URL_OPTION = {
  type: 'string',
  value: 'URL',
  doc: "the bag's API (default DUMP_BAG_URL, else http://127.0.0.1:8080 of dump-bag serve)",
} as const;
const JSON_OPTION = { type: 'boolean', default: false, doc: 'print JSON instead of text' } as const;
const KEY_OPTION = {
  type: 'string',
  value: 'FILE',
  doc: 'your armored secret key file, to decrypt with (default DUMP_BAG_SECRET_KEY)',
} as const;
const FOREIGN_OPTION = {
  type: 'boolean',
  default: false,
  doc: 'read a message Dump Bag does not write (compressed, old format), if you trust where it came from',
} as const;
const ALLOW_UNSIGNED_OPTION = {
  type: 'boolean',
  default: false,
  doc: 'read a dump whose record is unsigned (made before records were signed), with a warning; a wrong signature is never read',
} as const;
const DATABASE = { name: '<database>', doc: 'the database the dump is of' } as const;
const ID = {
  name: '<id>|latest',
  optional: true,
  doc: "the dump's id, as list shows it (default latest)",
} as const;

/** Every command's arguments and options, declared once: the parser and the help text read them. */
export const commandSpecs = {
  backup: command({
    name: 'backup',
    summary: 'back up every selected database now',
    positionals: [],
    options: {
      json: { ...JSON_OPTION, doc: 'print one JSON summary: database, key, bytes, seconds, status, error' },
      trigger: {
        type: 'string',
        value: 'schedule|manual',
        default: 'schedule',
        doc: 'how the dump is recorded, which decides its retention',
      },
    },
    notes: ['Configuration comes from the environment: see README.md.'],
  }),
  cleanup: command({
    name: 'cleanup',
    summary: 'abort uploads and remove unrecorded dumps left by killed runs',
    positionals: [],
    options: {
      'older-than': {
        type: 'string',
        value: 'DURATION',
        default: '24h',
        doc: 'leave alone what is younger, by upload start and object time (30m, 24h, 7d)',
      },
      json: JSON_OPTION,
    },
  }),
  demo: command({
    name: 'demo',
    summary:
      'start a local PostgreSQL and S3 server with demo data (unless PG*/AWS* say otherwise) and back up',
    positionals: [],
    options: {},
    notes: ['State is kept in .dump-bag/ of the current folder.'],
  }),
  serve: command({
    name: 'serve',
    summary: 'the API and status page on http://127.0.0.1:N/, same code as the Lambda',
    positionals: [],
    options: {
      port: {
        type: 'string',
        value: 'N',
        // The port the commands' default URL names.
        default: new URL(SETTINGS.url.default).port,
        doc: 'the loopback port to listen on',
      },
    },
  }),
  list: command({
    name: 'list',
    summary: 'the dumps in the bag, newest first, with the pg_restore each needs (and the globals dumps)',
    positionals: [{ ...DATABASE, optional: true, doc: 'only the dumps of this database' }],
    options: { json: JSON_OPTION, url: URL_OPTION },
  }),
  get: command({
    name: 'get',
    summary: 'download, check and decrypt a dump (or with --globals, the roles and tablespaces)',
    positionals: [
      { ...DATABASE, optional: true, doc: 'the database the dump is of (none with --globals)' },
      ID,
    ],
    options: {
      output: {
        type: 'string',
        short: 'o',
        value: 'FILE|-',
        doc: 'where to write the archive, - for standard output (default <database>-<id>.pgdump)',
      },
      restore: { type: 'string', value: 'CONNINFO', doc: 'pg_restore it into this database instead' },
      key: KEY_OPTION,
      encrypted: { type: 'boolean', default: false, doc: 'keep it encrypted (the SHA-256 is still checked)' },
      'allow-unsigned': ALLOW_UNSIGNED_OPTION,
      stream: {
        type: 'boolean',
        default: false,
        doc: 'write as it arrives, before the SHA-256 and integrity checks are done (a tampered dump may be partly written)',
      },
      table: {
        type: 'string',
        multiple: true,
        value: 'TABLE',
        doc: 'with --restore: only this table (repeatable)',
      },
      schema: {
        type: 'string',
        multiple: true,
        value: 'SCHEMA',
        doc: 'with --restore: only this schema (repeatable)',
      },
      'data-only': { type: 'boolean', doc: 'with --restore: the rows only, into existing tables' },
      clean: { type: 'boolean', doc: 'with --restore: drop the objects before recreating them' },
      'if-exists': { type: 'boolean', doc: 'with --clean: DROP … IF EXISTS' },
      jobs: {
        type: 'string',
        value: 'N',
        doc: 'with --restore: N parallel jobs (the checked archive goes to a work file first)',
      },
      globals: {
        type: 'boolean',
        default: false,
        doc: 'the globals dump (roles, tablespaces) as SQL for psql; the argument is its <id>|latest',
      },
      foreign: FOREIGN_OPTION,
      url: URL_OPTION,
    },
    notes: [
      '-o and --restore exclude each other; so do --encrypted and --restore.',
      'Before downloading for --restore, the local pg_restore is compared with the one the dump needs.',
    ],
  }),
  verify: command({
    name: 'verify',
    summary: 'check SHA-256, decrypt, pg_restore --list',
    positionals: [
      { ...DATABASE, optional: true, doc: 'only this database (default: the newest dump of each)' },
      ID,
    ],
    options: {
      key: KEY_OPTION,
      'checksum-only': { type: 'boolean', default: false, doc: 'check the SHA-256 only, do not decrypt' },
      'allow-unsigned': ALLOW_UNSIGNED_OPTION,
      foreign: FOREIGN_OPTION,
      json: JSON_OPTION,
      url: URL_OPTION,
    },
  }),
  rekey: command({
    name: 'rekey',
    summary: "re-encrypt stored dumps for today's recipients, without dumping again",
    positionals: [],
    options: {
      database: { type: 'string', value: 'DB', doc: 'only the dumps of this database' },
      'dry-run': { type: 'boolean', default: false, doc: 'list what would change, change nothing' },
      key: KEY_OPTION,
      json: JSON_OPTION,
    },
    notes: [
      "Today's recipients come from DUMP_BAG_PUBLIC_KEYS/DUMP_BAG_RECIPIENTS, as for backup; needs the rights of the stack's RekeyPolicyArn.",
    ],
  }),
  keys: command({
    name: 'keys',
    summary: "the bag's public keys, armored (pipe into gpg --import); each key's expiry on stderr",
    positionals: [],
    options: { url: URL_OPTION },
  }),
  recipients: command({
    name: 'recipients',
    summary: 'the fingerprints dumps are encrypted for, comma-separated',
    positionals: [],
    options: { url: URL_OPTION },
  }),
} satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof commandSpecs;
