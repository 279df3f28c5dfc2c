import { DumpBagError, errorMessage } from '../functions/core/errors';

interface Command {
  readonly usage: string;
  run(argv: string[]): Promise<number>;
}

/** Each command lives in its own module, loaded only when called. */
const commands: Record<string, () => Promise<Command>> = {
  backup: () => import('./commands/backup'),
  cleanup: () => import('./commands/cleanup'),
  demo: () => import('./commands/demo'),
  serve: () => import('./commands/serve'),
  list: () => import('./commands/list'),
  get: () => import('./commands/get'),
  verify: () => import('./commands/verify'),
  keys: () => import('./commands/keys'),
  recipients: () => import('./commands/recipients'),
};

async function help(): Promise<void> {
  const lines = await Promise.all(Object.values(commands).map(async (load) => `  ${(await load()).usage}`));
  console.log(
    `usage: dump-bag <command> [options]\n\n${lines.join('\n')}\n\nConfiguration comes from the environment: see README.md.`,
  );
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === 'help' || name === '--help' || name === '-h') {
    await help();
    return name ? 0 : 2;
  }
  const load = commands[name];
  if (!load) {
    console.error(`dump-bag: unknown command "${name}"; run dump-bag --help`);
    return 2;
  }
  try {
    return await (await load()).run(rest);
  } catch (error) {
    if (process.env.DUMP_BAG_DEBUG) console.error(error);
    const prefix = error instanceof DumpBagError ? '' : 'unexpected error: ';
    console.error(`dump-bag ${name}: ${prefix}${errorMessage(error)}`);
    return error instanceof TypeError &&
      (error as NodeJS.ErrnoException).code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
      ? 2
      : 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
