// Preloaded into the measured `dump-bag backup` process with `node --import`: when it exits, it
// writes that process's own CPU time and peak RSS, without its children's (pg_dump), and the time
// its garbage collections paused the main thread, by kind, to a file.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { constants, PerformanceObserver } from 'node:perf_hooks';

const target = process.env.DUMP_BAG_BENCH_USAGE_FILE;
if (target) {
  const KINDS = {
    [constants.NODE_PERFORMANCE_GC_MINOR]: 'minor',
    [constants.NODE_PERFORMANCE_GC_MAJOR]: 'major',
    [constants.NODE_PERFORMANCE_GC_INCREMENTAL]: 'incremental',
    [constants.NODE_PERFORMANCE_GC_WEAKCB]: 'weak',
  };
  const gc = {};
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const kind = KINDS[entry.detail?.kind] ?? 'other';
      const seen = gc[kind] ?? { count: 0, ms: 0 };
      gc[kind] = { count: seen.count + 1, ms: seen.ms + entry.duration };
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  /** CPU seconds of the main thread and of the others (Linux; all are named "node"): V8's helpers (GC, compilers), libuv's pool. */
  const threads = () => {
    const byName = {};
    try {
      for (const id of readdirSync('/proc/self/task')) {
        const name = id === String(process.pid) ? 'main' : 'others';
        const stat = readFileSync(`/proc/self/task/${id}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        const seconds = (Number(fields[11]) + Number(fields[12])) / 100;
        byName[name] = (byName[name] ?? 0) + seconds;
      }
    } catch {
      // Not Linux: no per-thread figures.
    }
    return byName;
  };
  process.once('exit', () => {
    const usage = process.resourceUsage();
    writeFileSync(
      target,
      JSON.stringify({
        userSeconds: usage.userCPUTime / 1e6,
        systemSeconds: usage.systemCPUTime / 1e6,
        maxRssBytes: usage.maxRSS * 1024,
        gc,
        threads: threads(),
      }),
    );
  });
}
