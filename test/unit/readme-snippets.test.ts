import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

/**
 * Issue 13 §2: every TypeScript block of the README is typechecked against the real code, so the
 * README cannot drift from it. Each ```ts or ```typescript block becomes a module of its own in
 * .build/ (inside the repository, so the package's own name and its `#core/*` aliases resolve as
 * they do for a user's app), and one `tsc --noEmit` run with the project's compiler options checks
 * them all. A block that is deliberately a fragment says so in its fence: ```ts ignore.
 */
const ROOT = path.resolve(import.meta.dirname, '../..');

interface CodeBlock {
  /** 1-based line of the opening fence in the README. */
  readonly line: number;
  /** What follows the fence's backticks: `ts`, `typescript ignore`, … */
  readonly info: string;
  readonly code: string;
}

/** The fenced blocks of a Markdown text, indented ones (inside a list item) de-indented. */
function fencedBlocks(markdown: string): CodeBlock[] {
  const lines = markdown.split('\n');
  const blocks: CodeBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)(`{3,})(.*)$/.exec(lines[i] ?? '');
    if (!open) continue;
    const [, indent = '', fence = '```', info = ''] = open;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length; j++) {
      const line = lines[j] ?? '';
      // A closing fence: backticks only, at least as many as the opening one.
      if (/^`+$/.test(line.trim()) && line.trim().length >= fence.length) break;
      body.push(line.startsWith(indent) ? line.slice(indent.length) : line.trimStart());
    }
    blocks.push({ line: i + 1, info: info.trim(), code: body.join('\n') });
    i = j;
  }
  return blocks;
}

/** The blocks to typecheck: `ts` or `typescript`, without the `ignore` marker. */
function typeScriptBlocks(markdown: string): CodeBlock[] {
  return fencedBlocks(markdown).filter((block) => {
    const [language, ...flags] = block.info.split(/\s+/);
    return (language === 'ts' || language === 'typescript') && !flags.includes('ignore');
  });
}

describe('fencedBlocks', () => {
  it('finds ts and typescript blocks, de-indents list items, and skips the ignore marker', () => {
    const markdown = [
      '# x',
      '```ts',
      'const a = 1;',
      '```',
      '1. step',
      '',
      '   ```typescript',
      '   const b = 2;',
      '     const c = 3;',
      '   ```',
      '```ts ignore',
      'fragment(',
      '```',
      '```bash',
      'npm start',
      '```',
    ].join('\n');
    expect(typeScriptBlocks(markdown)).toEqual([
      { line: 2, info: 'ts', code: 'const a = 1;' },
      { line: 7, info: 'typescript', code: 'const b = 2;\n  const c = 3;' },
    ]);
    expect(fencedBlocks(markdown).map((b) => b.info)).toEqual([
      'ts',
      'typescript',
      'ts ignore',
      'bash',
    ]);
  });
});

describe('README TypeScript blocks', () => {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const blocks = typeScriptBlocks(readme);
  const dir = path.join(ROOT, '.build', `readme-snippets-${process.pid}`);
  const fileOf = (block: CodeBlock) => `readme-line-${block.line}.ts`;
  /** Diagnostics per snippet file name. */
  const diagnostics = new Map<string, string[]>();
  let compilerOutput = '';

  beforeAll(() => {
    mkdirSync(dir, { recursive: true });
    for (const block of blocks) {
      // Each block is a module of its own, so two blocks may both declare `app`.
      writeFileSync(path.join(dir, fileOf(block)), `${block.code}\nexport {};\n`);
    }
    writeFileSync(
      path.join(dir, 'tsconfig.json'),
      // The project's exclude names .build; these files are the whole input here.
      JSON.stringify({ extends: '../../tsconfig.json', include: ['*.ts'], exclude: [] }),
    );
    const tsc = spawnSync(
      path.join(ROOT, 'node_modules/.bin/tsc'),
      ['--noEmit', '--pretty', 'false', '-p', path.join(dir, 'tsconfig.json')],
      { cwd: ROOT, encoding: 'utf8' },
    );
    compilerOutput = `${tsc.stdout}${tsc.stderr}`;
    // `path(line,col): error TS…: message`; only the snippets' own (the code they import may be
    // mid-edit elsewhere; its own tests and the typecheck of the project catch that).
    for (const line of compilerOutput.split('\n')) {
      const match = /(readme-line-\d+\.ts)\((\d+),(\d+)\): (error TS\d+: .*)$/.exec(line);
      if (!match) continue;
      const [, file = '', row = '', col = '', message = ''] = match;
      const list = diagnostics.get(file) ?? [];
      list.push(`${row}:${col} ${message}`);
      diagnostics.set(file, list);
    }
  }, 180_000);

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('has TypeScript blocks to check, and few that opt out', () => {
    expect(blocks.length).toBeGreaterThanOrEqual(2);
    const ignored = fencedBlocks(readme).filter((b) =>
      /^(ts|typescript)\s.*\bignore\b/.test(b.info),
    );
    expect(ignored.length).toBeLessThanOrEqual(2);
  });

  it('ran the compiler on them', () => {
    // A compiler that could not start or found no input leaves no per-file diagnostics, which
    // must not pass for clean: global errors (`error TS18003: No inputs were found`) fail here.
    const global = compilerOutput.split('\n').filter((line) => /^error TS\d+/.test(line.trim()));
    expect(global).toEqual([]);
    expect(compilerOutput).not.toMatch(/ENOENT|not found/i);
  });

  it.each(blocks.map((block) => [block.line, block] as const))(
    'typechecks the block at README line %i',
    (_line, block) => {
      expect(diagnostics.get(fileOf(block)) ?? []).toEqual([]);
    },
  );
});
