import type { RetentionPolicy } from '../core/config';
import { formatDuration, formatSize, type ListedDump, ranOn } from '../core/listing';
import { dumpPath } from './paths';

/** One line of the key banner: a key about to expire, or keys that cannot be used at all. */
export interface KeyBanner {
  readonly fingerprint?: string;
  readonly message: string;
}

/** What the page shows: the same content renders alike under any stage, nonce or clock. */
export interface StatusPageContent {
  /** Every dump, newest first, with its expiry. */
  readonly dumps: readonly ListedDump[];
  readonly retention: RetentionPolicy;
  /** Warnings about the recipients' keys, shown above everything. @default none */
  readonly keyBanner?: readonly KeyBanner[];
  /** The globals dumps (roles, tablespaces), newest first, with their expiry; the page shows the newest. @default none */
  readonly globals?: readonly ListedDump[];
}

/** Where and when one response renders the page. */
export interface PageContext {
  /** Prefix of every link: the stage's path when the API is not on its default stage. */
  readonly basePath: string;
  /** The Content-Security-Policy nonce that lets the page's own script and style run, and nothing else. */
  readonly nonce: string;
  readonly now: Date;
}

/** The banner naming keys about to expire (and how to renew them): a backup fails closed once one has. */
function keyBanner(lines: readonly KeyBanner[] = []): string {
  if (lines.length === 0) return '';
  return `<section id="key-banner" class="banner" role="alert">
<strong>Keys need attention</strong>
<ul>${lines.map((l) => `<li${l.fingerprint ? ` data-fingerprint="${escapeHtml(l.fingerprint)}"` : ''}>${escapeHtml(l.message)}</li>`).join('')}</ul>
</section>
`;
}

/** Escapes text for HTML element content and double-quoted attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** `2026-11-23 19:45 UTC`; with seconds, `2026-11-23 19:45:07 UTC`, which tells apart dumps of one minute. */
function utc(iso: string, seconds = false): string {
  return `${iso.slice(0, seconds ? 19 : 16).replace('T', ' ')} UTC`;
}

function whoCanDecrypt(dump: ListedDump): string {
  if (dump.encryption === 'none') return '<span class="warn">anyone: not encrypted</span>';
  if (dump.encryption === 'passphrase') return 'whoever holds the passphrase';
  if (dump.recipients.length === 0) return '<span class="warn">nobody recorded</span>';
  return `<ul class="recipients">${dump.recipients
    .map((r) => `<li title="${escapeHtml(r.fingerprint)}">${escapeHtml(r.userId || r.fingerprint)}</li>`)
    .join('')}</ul>`;
}

function deletion(dump: ListedDump, retention: RetentionPolicy, now: Date): string {
  if (dump.expiresAt === null) {
    return `kept while among the newest ${retention.keepMin}`;
  }
  const left = new Date(dump.expiresAt).getTime() - now.getTime();
  return `<time datetime="${escapeHtml(dump.expiresAt)}">${escapeHtml(utc(dump.expiresAt))}</time> ${
    left > 0 ? `(in ${formatDuration(left)})` : '(at the next backup)'
  }`;
}

/** What the page says of each record's signature, checked against the bag's own key. */
const SIGNATURE_LABELS: Readonly<Record<string, string>> = {
  valid: 'signed',
  unsigned: 'UNSIGNED',
  invalid: 'BAD SIGNATURE',
  unchecked: 'not checked',
};

function row(dump: ListedDump, retention: RetentionPolicy, page: PageContext): string {
  const urlPath = `${page.basePath}${dumpPath(dump.database, dump.id, '/url')}`;
  const age = page.now.getTime() - new Date(dump.createdAt).getTime();
  return `<tr class="dump" data-id="${escapeHtml(dump.id)}">
<td class="date"><time datetime="${escapeHtml(dump.createdAt)}">${escapeHtml(utc(dump.createdAt, true))}</time></td>
<td class="age">${formatDuration(age)}</td>
<td class="size" data-bytes="${dump.bytes}">${formatSize(dump.bytes)}</td>
<td class="trigger">${escapeHtml(dump.trigger)}</td>
<td class="runner">${escapeHtml(ranOn(dump))}</td>
<td class="who">${whoCanDecrypt(dump)}</td>
<td class="signature">${SIGNATURE_LABELS[dump.signatureState ?? 'unchecked']}</td>
<td class="expires">${deletion(dump, retention, page.now)}</td>
<td class="restore">${typeof dump.restoreMajor === 'number' && Number.isSafeInteger(dump.restoreMajor) ? `pg_restore ${dump.restoreMajor}+` : ''}</td>
<td><button type="button" class="download" data-url="${escapeHtml(urlPath)}">Download</button></td>
</tr>`;
}

/** The newest globals dump (what a restore into a fresh server needs first), with its download button. */
function globalsSection(content: StatusPageContent, page: PageContext): string {
  const latest = content.globals?.[0];
  if (!latest) return '';
  const urlPath = `${page.basePath}/globals/${encodeURIComponent(latest.id)}/url`;
  const count = content.globals?.length ?? 0;
  return `<section class="globals" id="globals">
<h2>Globals: roles and tablespaces</h2>
<p class="sub">The newest of ${count} globals dump${count === 1 ? '' : 's'} (pg_dumpall --globals-only, without passwords): restore it before the databases into a fresh server.</p>
<table>
<thead><tr><th>Date</th><th>Age</th><th>Size</th><th>Trigger</th><th>Who can decrypt</th><th>Deleted</th><th></th></tr></thead>
<tbody>
<tr class="globals" data-id="${escapeHtml(latest.id)}">
<td class="date"><time datetime="${escapeHtml(latest.createdAt)}">${escapeHtml(utc(latest.createdAt, true))}</time></td>
<td class="age">${formatDuration(page.now.getTime() - new Date(latest.createdAt).getTime())}</td>
<td class="size" data-bytes="${latest.bytes}">${formatSize(latest.bytes)}</td>
<td class="trigger">${escapeHtml(latest.trigger)}</td>
<td class="who">${whoCanDecrypt(latest)}</td>
<td class="expires">${deletion(latest, content.retention, page.now)}</td>
<td><button type="button" class="download" data-url="${escapeHtml(urlPath)}">Download</button></td>
</tr>
</tbody>
</table>
</section>
`;
}

const STYLE = `
body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem; color: #222; }
h1 { margin: 0 0 .25rem; }
h2 { margin: 2rem 0 .5rem; font-size: 1.15rem; overflow-wrap: anywhere; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; vertical-align: top; }
th { font-weight: 600; background: #f4f4f4; }
td.size, td.age, td.runner { white-space: nowrap; }
ul.recipients { margin: 0; padding: 0; list-style: none; }
.summary, .sub { color: #555; margin: .25rem 0; }
.warn { color: #a40; }
#message { color: #a00; min-height: 1.4em; }
.banner { background: #fff4e0; border: 1px solid #e0a040; padding: .5rem 1rem; margin: 1rem 0; }
.banner ul { margin: .25rem 0 0; padding-left: 1.2rem; }
button { cursor: pointer; }
`;

/** The browser's half: each button asks for a fresh presigned URL and follows it, so no link goes stale. */
const SCRIPT = `
for (const button of document.querySelectorAll('button.download')) {
  button.addEventListener('click', async () => {
    const message = document.getElementById('message');
    message.textContent = '';
    button.disabled = true;
    try {
      const response = await fetch(button.dataset.url, {
        headers: { accept: 'application/json' },
        credentials: 'same-origin',
        cache: 'no-store',
      });
      const body = await response.json().catch(() => ({}));
      if (!response.ok || typeof body.url !== 'string') throw new Error(body.error || 'HTTP ' + response.status);
      window.location.assign(body.url);
    } catch (error) {
      message.textContent = 'Cannot download: ' + (error && error.message ? error.message : String(error));
    } finally {
      button.disabled = false;
    }
  });
}
`;

/** The status page: per database its dumps (date, age, size, trigger, where it ran, readers, deletion), and the totals. */
export function renderStatusPage(content: StatusPageContent, page: PageContext): string {
  const byDatabase = new Map<string, ListedDump[]>();
  for (const dump of content.dumps) {
    const list = byDatabase.get(dump.database) ?? [];
    list.push(dump);
    byDatabase.set(dump.database, list);
  }
  const names = [...byDatabase.keys()].sort((a, b) => a.localeCompare(b));
  const total = content.dumps.reduce((sum, d) => sum + d.bytes, 0);
  const sections = names.map((name) => {
    const dumps = byDatabase.get(name) ?? [];
    const size = dumps.reduce((sum, d) => sum + d.bytes, 0);
    return `<section class="database" data-database="${escapeHtml(name)}">
<h2>${escapeHtml(name)}</h2>
<p class="sub">${dumps.length} dump${dumps.length === 1 ? '' : 's'}, ${formatSize(size)}</p>
<table>
<thead><tr><th>Date</th><th>Age</th><th>Size</th><th>Trigger</th><th>Ran on</th><th>Who can decrypt</th><th>Signature</th><th>Deleted</th><th>Restore with</th><th></th></tr></thead>
<tbody>
${dumps.map((d) => row(d, content.retention, page)).join('\n')}
</tbody>
</table>
</section>`;
  });
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Dump Bag</title>
<link rel="icon" href="data:,">
<style nonce="${escapeHtml(page.nonce)}">${STYLE}</style>
</head>
<body>
<header>
<h1>Dump Bag</h1>
<p class="summary" id="total" data-bytes="${total}">${content.dumps.length} dump${content.dumps.length === 1 ? '' : 's'} of ${names.length} database${names.length === 1 ? '' : 's'}, ${formatSize(total)} in total. Scheduled dumps are kept ${content.retention.retentionDays} days, manual ones ${content.retention.manualRetentionDays}, and never fewer than ${content.retention.keepMin} per database. As of <time datetime="${page.now.toISOString()}">${utc(page.now.toISOString())}</time>.</p>
</header>
${keyBanner(content.keyBanner)}<p id="message" role="status"></p>
${globalsSection(content, page)}${sections.length > 0 ? sections.join('\n') : '<p>No dumps yet.</p>'}
<script nonce="${escapeHtml(page.nonce)}">${SCRIPT}</script>
</body>
</html>
`;
}
