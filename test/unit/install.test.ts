import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';

/**
 * Issue 13 §3, "no EBADENGINE warnings on install with the machine's own Node; scripts still run
 * on Node 22". npm runs on whatever Node the machine has (Node 20 here) and warns, package by
 * package, when that Node is outside a package's `engines.node` (npm-install-checks `checkEngine`,
 * called from arborist's build-ideal-tree for every non-optional node; an optional one that fails
 * is skipped silently). Every script then runs on the Node 22 that `npm ci` installs from the
 * `node` package. This reads the lockfile, which carries each package's `engines`, and checks it
 * against Node 20.19 (vite and rolldown, under vitest, need it; npm itself runs from 20.17, which
 * the root `devEngines` admits) and this machine's 20.20.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');
const semver = createRequire(import.meta.url)('semver') as {
  satisfies(version: string, range: string, options?: { includePrerelease?: boolean }): boolean;
};

interface LockEntry {
  readonly version?: string;
  readonly optional?: boolean;
  readonly engines?: { readonly node?: string };
}

const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as {
  devEngines: { runtime: { version: string } };
  devDependencies: Record<string, string>;
};
const lock = JSON.parse(readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
  packages: Record<string, LockEntry>;
};

/**
 * Packages that may warn on Node 20, each with why: none. `openai` (every release this project
 * uses declares `node >= 22.0.0`) is not a root dependency: it is installed apart, into
 * test/reference-sdk/, by the root `postinstall` on Node 22 (scripts/install-reference-sdk.mjs).
 */
const KNOWN: Readonly<Record<string, string>> = {};

function warnsOn(nodeVersion: string): string[] {
  const warned: string[] = [];
  for (const [where, entry] of Object.entries(lock.packages)) {
    // The root is not checked when it has devEngines (arborist), nor are optional packages.
    if (where === '' || entry.optional || !entry.engines?.node) continue;
    if (!semver.satisfies(nodeVersion, entry.engines.node, { includePrerelease: true }))
      warned.push(where.slice(where.lastIndexOf('node_modules/') + 'node_modules/'.length));
  }
  return warned.sort();
}

describe('install', () => {
  it('admits Node 20 in the root devEngines, so npm itself may run on it', () => {
    expect(semver.satisfies('20.19.0', pkg.devEngines.runtime.version)).toBe(true);
    expect(semver.satisfies('20.20.2', pkg.devEngines.runtime.version)).toBe(true);
  });

  it('locks no package whose engines warn on Node 20, other than the known ones', () => {
    expect(warnsOn('20.19.0')).toEqual(Object.keys(KNOWN).sort());
    expect(warnsOn('20.20.2')).toEqual(Object.keys(KNOWN).sort());
  });

  it('locks no package that warns on the Node 22 the scripts run on', () => {
    expect(warnsOn(pkg.devDependencies.node ?? '')).toEqual([]);
  });

  it('installs openai apart, on Node 22, where imports find it', async () => {
    expect(
      Object.keys(lock.packages).filter((where) => where.endsWith('node_modules/openai')),
    ).toEqual([]);
    const reference = JSON.parse(
      readFileSync(path.join(ROOT, 'test/reference-sdk/package-lock.json'), 'utf8'),
    ) as { packages: Record<string, LockEntry> };
    const locked = reference.packages['node_modules/openai'];
    // Why it is apart: it would warn on Node 20. It does not on the Node 22 that installs it.
    expect(semver.satisfies('20.20.2', locked?.engines?.node ?? '')).toBe(false);
    expect(semver.satisfies(pkg.devDependencies.node ?? '', locked?.engines?.node ?? '')).toBe(
      true,
    );
    // What `import 'openai'` loads is that locked version, from test/reference-sdk: tsc and tsx
    // by tsconfig's paths, vitest by its alias; nothing in node_modules for npm to prune.
    const dir = path.join(ROOT, 'test/reference-sdk/node_modules/openai');
    const tsconfig = JSON.parse(readFileSync(path.join(ROOT, 'tsconfig.json'), 'utf8')) as {
      compilerOptions: { paths: Record<string, string[]> };
    };
    expect(tsconfig.compilerOptions.paths.openai).toEqual([
      './test/reference-sdk/node_modules/openai',
    ]);
    expect(existsSync(path.join(ROOT, 'node_modules/openai'))).toBe(false);
    const { VERSION } = await import('openai/version');
    expect(VERSION).toBe(locked?.version);
    expect(JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8')).version).toBe(
      locked?.version,
    );
  });

  it('runs the scripts (and these tests) on Node 22, from the node package', () => {
    expect(process.versions.node.split('.')[0]).toBe('22');
    expect(process.versions.node).toBe(pkg.devDependencies.node);
  });
});
