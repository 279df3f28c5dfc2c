import { DumpBagError } from '../../functions/core/errors';

/** Whether a secret can be asked for: both the keyboard and the screen are a terminal. */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
}

/** The hidden line so far, and what ended it: Enter (or Ctrl-D) or Ctrl-C. */
interface Line {
  readonly value: string;
  readonly end?: 'enter' | 'cancel';
}

function keystroke(value: string, c: string): Line {
  if (c === '\r' || c === '\n' || c === '\u0004') return { value, end: 'enter' };
  if (c === '\u0003') return { value, end: 'cancel' };
  return { value: c === '\u007f' || c === '\b' ? value.slice(0, -1) : value + c };
}

/** The line after a chunk of keystrokes; what follows the keystroke that ends it is ignored. */
function typed(value: string, chunk: string): Line {
  let line: Line = { value };
  for (const c of chunk) {
    line = keystroke(line.value, c);
    if (line.end) break;
  }
  return line;
}

/** Reads a line from the terminal without echoing it (for passphrases); Ctrl-C cancels. */
export async function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) throw new DumpBagError('cannot ask for a passphrase: standard input is not a terminal');
  // Raw before the question appears, so nothing typed after it is echoed.
  input.setRawMode(true);
  process.stderr.write(question);
  input.resume();
  input.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let value = '';
      const onData = (chunk: string) => {
        const line = typed(value, chunk);
        value = line.value;
        if (!line.end) return;
        input.off('data', onData);
        if (line.end === 'cancel') reject(new DumpBagError('cancelled'));
        else resolve(value);
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
    process.stderr.write('\n');
  }
}
