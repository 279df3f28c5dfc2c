import { formatSize } from '../../functions/core/listing';

export interface Progress {
  update(bytes: number): void;
  /** Ends the line; `ok` false clears it instead, so an error message starts on a clean line. */
  done(ok: boolean): void;
}

const QUIET: Progress = { update: () => {}, done: () => {} };

/** One progress line, e.g. `shop  [#####-----]  48%  12.3 MB / 25.6 MB  8.1 MB/s`. */
export function progressLine(
  label: string,
  bytes: number,
  total: number,
  seconds: number,
  width: number,
): string {
  const rate = seconds > 0 ? bytes / seconds : 0;
  const share = total > 0 ? Math.min(1, bytes / total) : 0;
  const numbers = `${String(Math.floor(share * 100)).padStart(3)}%  ${formatSize(bytes)} / ${formatSize(total)}  ${formatSize(rate)}/s`;
  // A long name and id give way before the figures do.
  const room = width - 1 - numbers.length - 2;
  if (label.length > room) label = room > 1 ? `${label.slice(0, room - 1)}…` : '';
  const barWidth = Math.max(0, Math.min(30, width - label.length - numbers.length - 8));
  const filled = Math.round(share * barWidth);
  const bar = barWidth >= 5 ? `[${'#'.repeat(filled)}${'-'.repeat(barWidth - filled)}]  ` : '';
  return `${label}  ${bar}${numbers}`.slice(0, Math.max(0, width - 1));
}

/** A progress bar on stderr, drawn only when stderr is a terminal (never into a log or a pipe). */
export function createProgress(
  label: string,
  total: number,
  stream: NodeJS.WriteStream = process.stderr,
): Progress {
  if (!stream.isTTY) return QUIET;
  const started = performance.now();
  let last = 0;
  let bytes = 0;
  const draw = () => {
    const seconds = (performance.now() - started) / 1000;
    stream.write(`\r${progressLine(label, bytes, total, seconds, stream.columns || 80)}\u001b[K`);
  };
  return {
    update(value) {
      bytes = value;
      const now = performance.now();
      if (now - last >= 100) {
        last = now;
        draw();
      }
    },
    done(ok) {
      if (ok) {
        draw();
        stream.write('\n');
      } else {
        stream.write('\r\u001b[K');
      }
    },
  };
}
