import { DumpBagError } from '../../functions/core/errors';

/** Whether a secret can be asked for: both the keyboard and the screen are a terminal. */
export function canPrompt(): boolean {
  return Boolean(process.stdin.isTTY && process.stderr.isTTY);
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
        for (const c of chunk) {
          if (c === '\r' || c === '\n' || c === '\u0004') {
            input.off('data', onData);
            resolve(value);
            return;
          }
          if (c === '\u0003') {
            input.off('data', onData);
            reject(new DumpBagError('cancelled'));
            return;
          }
          if (c === '\u007f' || c === '\b') value = value.slice(0, -1);
          else value += c;
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
    process.stderr.write('\n');
  }
}
