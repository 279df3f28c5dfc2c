// Loaded with --require before a twin's bundle or bootstrap: says which runtime the process really is.
process.stderr.write(`twin-runtime ${process.arch} ${process.version}\n`);
