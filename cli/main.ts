import { DumpBagError, errorMessage } from '../functions/core/errors';
import { tuneHeapForStreaming } from '../functions/core/heap-settings';
import { helpText, type OptionSpec, type Parsed, parseCommand, UsageError, usageLine } from './command-line';
import { type CommandName, commandSpecs } from './command-specs';

interface Command {
  run(args: Parsed<Record<string, OptionSpec>>): Promise<number>;
}

/** Each command lives in its own module, loaded only when called; its options are in command-specs.ts. */
const commands: Record<CommandName, () => Promise<Command>> = {
  backup: () => import('./commands/backup'),
  cleanup: () => import('./commands/cleanup'),
  demo: () => import('./commands/demo'),
  serve: () => import('./commands/serve'),
  list: () => import('./commands/list'),
  get: () => import('./commands/get'),
  verify: () => import('./commands/verify'),
  rekey: () => import('./commands/rekey'),
  keys: () => import('./commands/keys'),
  recipients: () => import('./commands/recipients'),
};

function isCommand(name: string): name is CommandName {
  return Object.hasOwn(commandSpecs, name);
}

function overview(): string {
  const lines = Object.values(commandSpecs).map((spec) => `  ${usageLine(spec)}\n      ${spec.summary}`);
  return [
    'usage: dump-bag <command> [options]',
    '',
    ...lines,
    '',
    "Run dump-bag <command> --help for a command's arguments and options.",
    'Configuration comes from the environment: see README.md.',
  ].join('\n');
}

/** parseArgs' own messages go on about positionals and placeholders; the option's name is enough. */
function usageMessage(error: UsageError): string {
  const unknown = /^Unknown option '([^']+)'/.exec(error.message);
  if (unknown) return `unknown option "${unknown[1]}"`;
  const missing = /^Option '(-\w, )?(--[\w-]+) <value>' argument missing/.exec(error.message);
  return missing ? `${missing[2]} needs a value` : error.message;
}

export async function main(argv: string[]): Promise<number> {
  // backup, get and rekey stream dumps through this process: see heap-settings.ts.
  tuneHeapForStreaming();
  const [name, ...rest] = argv;
  if (name === undefined) {
    console.error(overview());
    return 2;
  }
  if (name === '--help' || name === '-h' || (name === 'help' && rest.length === 0)) {
    console.log(overview());
    return 0;
  }
  if (name === 'help') return main([...rest, '--help']);
  if (!isCommand(name)) {
    console.error(`dump-bag: unknown command "${name}"; run dump-bag --help for the list`);
    return 2;
  }
  const spec = commandSpecs[name];
  try {
    const args = parseCommand(spec, rest);
    if (args === 'help') {
      console.log(helpText(spec));
      return 0;
    }
    return await (await commands[name]()).run(args);
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`dump-bag ${name}: ${usageMessage(error)}\nusage: ${usageLine(spec)}`);
      console.error(`Run dump-bag ${name} --help for the options.`);
      return 2;
    }
    if (process.env.DUMP_BAG_DEBUG) console.error(error);
    const prefix = error instanceof DumpBagError ? '' : 'unexpected error: ';
    console.error(`dump-bag ${name}: ${prefix}${errorMessage(error)}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
