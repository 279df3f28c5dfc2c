import { type SpawnOptions, spawn } from 'node:child_process';

/** How a process ended and what it wrote. */
export interface ProcessResult {
  readonly code: number | null;
  readonly stdout: Buffer;
  readonly stderr: string;
}

/** Runs a command to its end with `input` on its stdin; a non-zero exit is the caller's to judge. */
export function runProcess(
  command: string,
  args: readonly string[],
  options: Omit<SpawnOptions, 'stdio'>,
  input?: Buffer,
): Promise<ProcessResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { ...options, stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout?.on('data', (c: Buffer) => out.push(c));
    child.stderr?.on('data', (c: Buffer) => err.push(c));
    child.on('error', reject);
    child.on('close', (code) =>
      resolve({ code, stdout: Buffer.concat(out), stderr: Buffer.concat(err).toString() }),
    );
    // A process that exits before reading all its input (gpg refusing a key) is judged by its exit, not EPIPE.
    child.stdin?.on('error', () => {});
    child.stdin?.end(input);
  });
}
