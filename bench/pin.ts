import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { have } from './measure';
import { withClient } from './workload';

/** The Lambda's one vCPU: pg_dump and the backup on CPU 0, the database server on CPU 1. */
export const ONE_CORE = { dump: '0', server: '1' } as const;

function parentOf(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
  } catch {
    return undefined;
  }
}

/**
 * Pins the PostgreSQL server (its postmaster and every process it has forked; new backends inherit
 * the postmaster's CPUs) to `cpus`. It must run on this machine: the postmaster is found as the
 * parent of this connection's backend. Returns the postmaster's process id.
 */
export async function pinServer(env: NodeJS.ProcessEnv, cpus: string): Promise<number> {
  if (!have('taskset')) throw new Error('--one-core needs taskset (util-linux)');
  const postmaster = await withClient(env, 'postgres', async (client) => {
    const backend = (await client.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
    // Read while the connection lives: its backend process ends with it.
    return parentOf(Number(backend));
  });
  if (!postmaster || postmaster <= 1) {
    throw new Error('--one-core: the PostgreSQL server is not a process of this machine (PGHOST is remote?)');
  }
  const family = readdirSync('/proc').filter((e) => /^\d+$/.test(e) && parentOf(Number(e)) === postmaster);
  for (const pid of [String(postmaster), ...family]) {
    try {
      execFileSync('taskset', ['-a', '-p', '-c', cpus, pid], { stdio: 'ignore' });
    } catch {
      // A backend that ended meanwhile.
    }
  }
  return postmaster;
}
