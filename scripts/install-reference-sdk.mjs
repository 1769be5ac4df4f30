// The root `postinstall`: installs the official `openai` package into test/reference-sdk/ (its own
// package.json and lockfile) with the Node 22 of the `node` package. tsc and tsx find it through
// tsconfig.json's `paths`, vitest through its alias: nothing is linked into node_modules, so a later
// `npm install <pkg>` (which prunes what it does not know) cannot take it away.
//
// Why apart: every openai release this project uses (7.55 and later) declares engines
// `node >= 22.0.0`, and npm checks engines against the Node npm itself runs on: on a machine with
// Node 20, a root dependency on openai printed `npm warn EBADENGINE` on every install (issue 13).
// This script runs as an npm script, where node_modules/.bin/node (Node 22) comes first on PATH,
// so the npm it starts runs on Node 22 and has nothing to warn about. Nothing deployed uses
// openai: the tests (the reference verifier and client), the bench and type imports do.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(import.meta.dirname, '..');
const prefix = path.join(root, 'test', 'reference-sdk');
const skip = (why) => {
  console.warn(`install-reference-sdk: skipped (${why}); the tests and the bench need it.`);
  process.exit(0);
};

// An install that installs nothing (npm install --package-lock-only, --dry-run) has nothing to do,
// nor one without dev dependencies (npm ci --omit=dev, NODE_ENV=production): openai is for tests.
if (
  process.env.npm_config_package_lock_only === 'true' ||
  process.env.npm_config_dry_run === 'true'
)
  process.exit(0);
if (/\bdev\b/.test(process.env.npm_config_omit ?? '') || process.env.NODE_ENV === 'production')
  skip('dev dependencies omitted');
// Without the node package's Node 22 (not installed, or run outside npm), npm would warn again.
if (Number(process.versions.node.split('.')[0]) < 22)
  skip(`running on Node ${process.versions.node}, not the Node 22 of the node package`);

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

const installed = path.join(prefix, 'node_modules', 'openai', 'package.json');
const { version } = JSON.parse(readFileSync(installed, 'utf8'));
console.log(`reference SDK: openai ${version} in test/reference-sdk`);
