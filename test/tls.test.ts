/**
 * Database TLS: a real PostgreSQL started with ssl = on and certificates made by openssl here, so
 * that verify-full refuses the wrong name and the wrong CA (in the plan's pg and in pg_dump) and
 * backs up by the right name, while require skips the check; then the rule itself (loopback keeps
 * libpq's default, other hosts verify-full against the shipped RDS CA bundle). Over 300 lines: the
 * one TLS server and its certificates, started once in beforeAll, which a split would start again.
 */
import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { appendFileSync, chmodSync, chownSync, mkdirSync, writeFileSync } from 'node:fs';
import { networkInterfaces, userInfo } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, loadEmbeddedPostgres } from '../cli/local/services';
import { type BackupTarget, dumpDatabase, runBackup } from '../functions/core/backup';
import { planBackup } from '../functions/core/databases';
import { isLocalHost, rdsCaBundle, resolveTls } from '../functions/core/db-tls';
import { connectionFromEnv, libpqEnv, type PgConnection, pgClientConfig } from '../functions/core/libpq';
import { backupTarget } from './support/bag';
import { allKeys, freshBucket, getObjectBytes, restoreInto, s3Client, snapshot } from './support/env';
import { tempDir } from './support/temp';

const ROWS = 'SELECT id, note FROM items ORDER BY id';
const DATABASE = 'tls_shop';
const NAME_FIX = /certificate is for another name: connect by a name the certificate holds/;
const CA_FIX = /not signed by a CA in PGSSLROOTCERT .*set PGSSLROOTCERT to the PEM file/;

/** This machine's first non-loopback IPv4 address, the way a remote server is reached. */
function networkAddress(): string | undefined {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return undefined;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
}

/** A test CA, an unrelated CA, and a server certificate from the first for `localhost` (and `ip`). */
function makeCertificates(dir: string, ip: string | undefined) {
  const ca = (name: string) => {
    openssl(
      dir,
      ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', `/CN=${name}`]
        .concat([
          '-keyout',
          `${name}.key`,
          '-out',
          `${name}.crt`,
          '-addext',
          'basicConstraints=critical,CA:TRUE',
        ])
        .concat(['-addext', 'keyUsage=critical,keyCertSign,cRLSign']),
    );
    return join(dir, `${name}.crt`);
  };
  const testCa = ca('test-ca');
  const otherCa = ca('other-ca');
  openssl(
    dir,
    ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=localhost'].concat([
      '-keyout',
      'server.key',
      '-out',
      'server.csr',
    ]),
  );
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=DNS:localhost${ip ? `,IP:${ip}` : ''}\n`);
  openssl(
    dir,
    ['x509', '-req', '-in', 'server.csr', '-CA', 'test-ca.crt', '-CAkey', 'test-ca.key'].concat([
      '-CAcreateserial',
      '-days',
      '2',
      '-extfile',
      'server.ext',
      '-out',
      'server.crt',
    ]),
  );
  return { testCa, otherCa, cert: join(dir, 'server.crt'), key: join(dir, 'server.key') };
}

// The RDS bundle the default verify-full writes for libpq; a vitest worker may end without an exit event.

describe('database TLS against a real PostgreSQL with ssl = on', () => {
  const ip = networkAddress();
  let server: { stop(): Promise<void> };
  let port: number;
  let certs: ReturnType<typeof makeCertificates>;
  let bucket: string;
  let base: BackupTarget;

  /** A connection to the TLS server by `host`, with libpq's TLS variables as given. */
  const connection = (host: string, tls: Record<string, string> = {}): PgConnection =>
    connectionFromEnv({
      PGHOST: host,
      PGPORT: String(port),
      PGUSER: 'postgres',
      PGPASSWORD: 'tls-pw-9f3k',
      ...tls,
    });
  const target = (conn: PgConnection): BackupTarget => ({ ...base, connection: conn });
  const dumpOnly = (conn: PgConnection) =>
    dumpDatabase(target(conn), {
      database: DATABASE,
      server: { version: '15', major: 15 },
      encryption: { mode: 'none' },
      trigger: 'manual',
    });

  beforeAll(async () => {
    const dir = tempDir('dump-bag-tls-');
    chmodSync(dir, 0o755);
    const certDir = join(dir, 'certs');
    mkdirSync(certDir, { mode: 0o755 });
    certs = makeCertificates(certDir, ip);
    port = await freePort();
    const EmbeddedPostgres = await loadEmbeddedPostgres();
    const root = userInfo().uid === 0;
    const dataDir = join(dir, 'data');
    const postgres = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: 'postgres',
      password: 'tls-pw-9f3k',
      persistent: false,
      createPostgresUser: root,
      initdbFlags: ['--encoding=UTF8', '--locale=C'],
      postgresFlags: [
        '-c',
        'ssl=on',
        '-c',
        `ssl_cert_file=${certs.cert}`,
        '-c',
        `ssl_key_file=${certs.key}`,
      ].concat(['-c', 'listen_addresses=*']),
      onLog: () => {},
      onError: () => {},
    });
    await postgres.initialise();
    // The server reads its key only when the key is its own (or root's with group access) and private.
    if (root) {
      const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
      const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
      chownSync(certs.key, uid, gid);
    }
    chmodSync(certs.key, 0o600);
    appendFileSync(join(dataDir, 'pg_hba.conf'), '\nhost all all 0.0.0.0/0 scram-sha-256\n');
    await postgres.start();
    server = postgres;
    const admin = new pg.Client({ ...pgClientConfig(connection('127.0.0.1', { PGSSLMODE: 'require' })) });
    await admin.connect();
    try {
      await admin.query(`CREATE DATABASE ${DATABASE}`);
    } finally {
      await admin.end();
    }
    const shop = new pg.Client(pgClientConfig(connection('127.0.0.1', { PGSSLMODE: 'require' }), DATABASE));
    await shop.connect();
    try {
      await shop.query(
        "CREATE TABLE items (id int PRIMARY KEY, note text); INSERT INTO items SELECT i, 'tls ' || md5(i::text) FROM generate_series(1, 500) i",
      );
    } finally {
      await shop.end();
    }
    bucket = await freshBucket();
    base = backupTarget(bucket);
  });

  afterAll(async () => {
    await server?.stop();
  });

  it('verify-full refuses a certificate for another name, in the plan (pg) and in pg_dump, and stores nothing', async () => {
    const conn = connection('127.0.0.1', { PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.testCa });
    const plan = planBackup(conn);
    await expect(plan).rejects.toMatchObject({ name: 'DatabaseTlsError' });
    await expect(plan).rejects.toThrow(/127\.0\.0\.1 with PGSSLMODE=verify-full: .*not in the cert's list/);
    await expect(plan).rejects.toThrow(NAME_FIX);
    await expect(plan).rejects.toThrow(/PGSSLMODE=require encrypts without checking who answers/);

    const dumped = await dumpOnly(conn);
    expect(dumped.status).toBe('failed');
    expect(dumped.error).toMatch(/pg_dump exited with code 1: .*does not match host name "127\.0\.0\.1"/s);
    expect(dumped.error).toMatch(NAME_FIX);
    expect(dumped.error).not.toContain('tls-pw-9f3k'); // the password

    const summary = await runBackup(target(conn), {
      config: { exclude: [], encryption: 'none', databases: [DATABASE] },
      trigger: 'manual',
    });
    expect(summary.ok).toBe(false);
    expect(summary.error).toMatch(NAME_FIX);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  it('verify-full with a CA that did not sign the certificate fails both, naming PGSSLROOTCERT', async () => {
    const conn = connection('localhost', { PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.otherCa });
    await expect(planBackup(conn)).rejects.toThrow(CA_FIX);
    const dumped = await dumpOnly(conn);
    expect(dumped.status).toBe('failed');
    expect(dumped.error).toMatch(/certificate verify failed/);
    expect(dumped.error).toMatch(CA_FIX);
    expect(await allKeys(s3Client(), bucket)).toEqual([]);
  });

  it('verify-full by a name the certificate holds backs up, and the dump restores to the same rows', async () => {
    const conn = connection('localhost', { PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.testCa });
    expect(libpqEnv(conn)).toMatchObject({ PGSSLMODE: 'verify-full', PGSSLROOTCERT: certs.testCa });
    const summary = await runBackup(target(conn), {
      config: { exclude: [], encryption: 'none', databases: [DATABASE] },
      trigger: 'manual',
    });
    expect(summary.error).toBeUndefined();
    const [result] = summary.results;
    expect(result?.status, result?.error).toBe('ok');
    await restoreInto(`${DATABASE}_restored`, await getObjectBytes(s3Client(), bucket, result?.key ?? ''));
    const source = new pg.Client(pgClientConfig(conn, DATABASE));
    await source.connect();
    try {
      const rows = JSON.stringify((await source.query(ROWS)).rows);
      expect(JSON.parse(rows)).toHaveLength(500);
      expect(await snapshot(`${DATABASE}_restored`, ROWS)).toBe(rows);
    } finally {
      await source.end();
    }
  });

  it('require, set explicitly, connects to the mismatched name without checking', async () => {
    const conn = connection('127.0.0.1', { PGSSLMODE: 'require' });
    expect(libpqEnv(conn).PGSSLROOTCERT).toBeUndefined();
    const plan = await planBackup(conn, { databases: [DATABASE] });
    expect(plan.databases.map((d) => d.name)).toEqual([DATABASE]);
    const dumped = await dumpOnly(conn);
    expect(dumped.status, dumped.error).toBe('ok');
  });

  it('a host across the network defaults to verify-full against the RDS CAs; PGSSLROOTCERT admits another CA', async () => {
    // Without a network interface the rule is still held by the unit assertions below.
    expect(resolveTls({ host: 'db.example.com' }).mode).toBe('verify-full');
    if (!ip) return;
    const byDefault = connection(ip);
    expect(byDefault.sslmode).toBeUndefined();
    await expect(planBackup(byDefault)).rejects.toThrow(
      new RegExp(`${ip.replace(/\./g, '\\.')} with PGSSLMODE=verify-full \\(the default\\)`),
    );
    const dumped = await dumpOnly(byDefault);
    expect(dumped.error).toMatch(/certificate verify failed/);
    expect(dumped.error).toMatch(/default: the Amazon RDS bundle/);

    const ownCa = connection(ip, { PGSSLROOTCERT: certs.testCa });
    expect((await planBackup(ownCa, { databases: [DATABASE] })).databases).toHaveLength(1);
    expect((await dumpOnly(ownCa)).status).toBe('ok');
  });
});

describe('the TLS rule', () => {
  it('keeps libpq’s default (no TLS forced) for loopback hosts and Unix sockets only', () => {
    for (const host of [
      undefined,
      '',
      'localhost',
      '127.0.0.1',
      '127.1.2.3',
      '::1',
      '[::1]',
      '/var/run/postgresql',
    ])
      expect(isLocalHost(host), String(host)).toBe(true);
    for (const host of [
      'db.example.com',
      '10.0.0.5',
      'localhost.evil.com',
      '128.0.0.1',
      'localhost,db.example',
    ])
      expect(isLocalHost(host), host).toBe(false);
    expect(resolveTls({ host: '127.0.0.1' }).mode).toBeUndefined();
    expect(libpqEnv({ host: '127.0.0.1' })).toEqual({ PGHOST: '127.0.0.1' });
    expect(pgClientConfig({ host: '127.0.0.1' }).ssl).toBeUndefined();
    expect(resolveTls({ host: 'db.internal', sslmode: 'require' })).toMatchObject({ mode: 'require' });
    expect(resolveTls({ host: 'db.internal', sslmode: 'require' }).rootCertFile).toBeUndefined();
  });

  it('refuses an sslmode libpq does not know, naming PGSSLMODE', () => {
    expect(() => connectionFromEnv({ PGSSLMODE: 'verify' })).toThrow(
      'PGSSLMODE must be one of disable, allow, prefer, require, verify-ca, verify-full, got "verify"',
    );
  });

  it('ships the Amazon RDS CA bundle it claims: every PEM parses, CAs, subjects name Amazon RDS', () => {
    const bundle = rdsCaBundle();
    expect(bundle.length).toBeGreaterThanOrEqual(100);
    const certs = bundle.map((pem) => new X509Certificate(pem));
    for (const cert of certs) expect(cert.ca, cert.subject).toBe(true);
    const rds = certs.filter((c) => /CN=Amazon RDS /.test(c.subject));
    expect(rds.length).toBeGreaterThanOrEqual(100);
    for (const region of ['us-east-1', 'eu-west-1', 'ap-southeast-2'])
      expect(
        rds.some((c) => c.subject.includes(`CN=Amazon RDS ${region} Root CA RSA2048 G1`)),
        region,
      ).toBe(true);
    // The rest are the roots RDS Proxy's certificates chain to.
    expect(
      certs
        .filter((c) => !rds.includes(c))
        .map((c) => c.subject.split('\n').find((l) => l.startsWith('CN='))),
    ).toEqual([
      'CN=Amazon Root CA 1',
      'CN=Amazon Root CA 2',
      'CN=Amazon Root CA 3',
      'CN=Amazon Root CA 4',
      'CN=Starfield Services Root Certificate Authority - G2',
    ]);
    // Still valid in ten years' time for the current generation (G1 roots run to 2061 and beyond).
    const later = Date.now() + 10 * 365 * 24 * 3600 * 1000;
    expect(
      rds.filter((c) => /G1$/m.test(c.subject) && new Date(c.validTo).getTime() > later).length,
    ).toBeGreaterThan(50);
  });
});
