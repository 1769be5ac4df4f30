// The root `postinstall`: installs the official `openai` package into test/reference-sdk/ with the
// Node 22 of the `node` package, and links it as node_modules/openai so that imports, tsc, vitest
// and tsx find it as usual.
//
// Why apart: every openai release this project uses (7.55 and later) declares engines
// `node >= 22.0.0`, and npm checks engines against the Node npm itself runs on: on a machine with
// Node 20, a root dependency on openai printed `npm warn EBADENGINE` on every install (issue 13).
// This script runs as an npm script, where node_modules/.bin/node (Node 22) comes first on PATH,
// so the npm it starts runs on Node 22 and has nothing to warn about. Nothing deployed uses
// openai: the tests (the reference verifier and client), the bench and type imports do.
import { execFileSync } from 'node:child_process';
import { lstatSync, mkdirSync, readFileSync, readlinkSync, rmSync, symlinkSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const prefix = path.join(root, 'test', 'reference-sdk');
const link = path.join(root, 'node_modules', 'openai');
const target = path.relative(path.dirname(link), path.join(prefix, 'node_modules', 'openai'));

const major = Number(process.versions.node.split('.')[0]);
if (major < 22) {
  console.error(
    `install-reference-sdk: runs on Node ${process.versions.node}; it needs the Node 22 of the node package (run it through npm: npm run postinstall).`,
  );
  process.exit(1);
}

// An install that installs nothing (npm install --package-lock-only, --dry-run) has nothing to do.
if (
  process.env.npm_config_package_lock_only === 'true' ||
  process.env.npm_config_dry_run === 'true'
)
  process.exit(0);

// The outer command's flags reach this script as npm_config_* variables; of those, only where
// packages come from applies to the nested install (not --omit, --global, --prefix and the like).
const KEEP =
  /^npm_config_(registry|@.*:registry|cache|userconfig|globalconfig|proxy|https_proxy|noproxy|strict_ssl|cafile|offline|prefer_offline|prefer_online|fetch_.*)$/i;
const env = Object.fromEntries(
  Object.entries(process.env).filter(([key]) => !/^npm_config_/i.test(key) || KEEP.test(key)),
);

// The npm that runs this script, started on this Node (22): npm_execpath is its npm-cli.js.
const npmCli = process.env.npm_execpath;
const [command, prefixArgs] =
  npmCli?.endsWith('.js') === true ? [process.execPath, [npmCli]] : ['npm', []];
execFileSync(
  command,
  [...prefixArgs, 'ci', '--prefix', prefix, '--no-audit', '--no-fund', '--loglevel=warn'],
  { stdio: 'inherit', env: { ...env, npm_config_engine_strict: 'true' } },
);

let current;
try {
  current = lstatSync(link).isSymbolicLink() ? readlinkSync(link) : 'not a link';
} catch {
  current = undefined;
}
if (current !== target) {
  if (current !== undefined) rmSync(link, { recursive: true, force: true });
  mkdirSync(path.dirname(link), { recursive: true });
  symlinkSync(target, link, 'dir');
}
const { version } = JSON.parse(readFileSync(path.join(link, 'package.json'), 'utf8'));
console.log(
  `reference SDK: openai ${version} in test/reference-sdk, linked as node_modules/openai`,
);
