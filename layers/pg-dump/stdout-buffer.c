/*
 * Linked into pg_dump, pg_dumpall and pg_restore by build.sh. pg_dump writes its archive to stdout
 * through stdio, whose buffer glibc sizes by st_blksize: 4 KiB on a pipe. A 300 MB archive is then
 * 73,000 writes, and the backup reads it about 4 KiB at a time. A 256 KiB buffer, set before main runs
 * and before any output, makes them 1,100 writes, read up to 64 KiB at a time (bench/README.md). A
 * terminal keeps its usual buffering.
 */
#include <stdio.h>
#include <unistd.h>

static char stdout_buffer[256 * 1024];

__attribute__((constructor)) static void dump_bag_stdout_buffer(void) {
  if (!isatty(STDOUT_FILENO)) setvbuf(stdout, stdout_buffer, _IOFBF, sizeof stdout_buffer);
}
