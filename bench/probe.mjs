// Preloaded into the measured `dump-bag backup` process with `node --import`: when it exits, it
// writes that process's own CPU time and peak RSS, without its children's (pg_dump), to a file.
import { writeFileSync } from 'node:fs';

const target = process.env.DUMP_BAG_BENCH_USAGE_FILE;
if (target) {
  process.once('exit', () => {
    const usage = process.resourceUsage();
    writeFileSync(
      target,
      JSON.stringify({
        userSeconds: usage.userCPUTime / 1e6,
        systemSeconds: usage.systemCPUTime / 1e6,
        maxRssBytes: usage.maxRSS * 1024,
      }),
    );
  });
}
