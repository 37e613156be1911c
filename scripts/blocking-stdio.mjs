// Preloaded (--import) into every test process by scripts/run-tests.mjs. With --test-force-exit,
// node's runner calls process.exit() once a file's tests are done; its test events travel to the
// parent runner over a pipe, and a pipe write still queued at that moment is dropped, so the last
// tests' results vanish while the file exits 0 (nodejs/node#64833, seen here about once per full
// run, and reproduced with a file whose tests print 20 KB each). Blocking writes cannot be left
// queued: every write has reached the pipe before process.exit() can run.
for (const stream of [process.stdout, process.stderr]) {
  // libuv's handle (not in Node's types): a pipe or a TTY; a file is written synchronously anyway.
  stream._handle?.setBlocking?.(true);
}
