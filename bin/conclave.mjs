#!/usr/bin/env node
// The `conclave` command. It runs the compiled build (`npm run build`, in dist/) when that is
// newer than every source file, and otherwise the TypeScript sources through tsx's loader, so a
// stale build is never run. CONCLAVE_TSX=1 always runs the sources.
import { readdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

function newestSource(dir) {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function buildIsFresh() {
  if (process.env.CONCLAVE_TSX === '1') return false;
  try {
    return statSync(join(root, 'dist', '.built')).mtimeMs >= newestSource(join(root, 'src'));
  } catch {
    return false;
  }
}

let main;
if (buildIsFresh()) {
  ({ main } = await import(pathToFileURL(join(root, 'dist/src/cli/main.js')).href));
} else {
  const { register } = await import('tsx/esm/api');
  register();
  ({ main } = await import('../src/cli/main.ts'));
}
const code = await main(process.argv.slice(2));
if (code !== 0) process.exit(code);
