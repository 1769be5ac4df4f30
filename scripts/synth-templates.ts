import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * `npm run templates`: synthesizes the templates that CI checks, into .build/templates/<app>/:
 *
 * - `default`: bin/app.ts, the app `npm run synth` and `cdk deploy` use (phone calls off);
 * - `calls`: scripts/calls-app.ts, the examples' app config (examples/app-config.ts) in one stack:
 *   phone calls on (sideband service, signal queue, VPC), its `CallTool.fromEntry` tool Lambdas
 *   and its example handlers bundled into the batch and response consumers.
 *
 * Each goes through the CDK CLI with cdk.json, as a deploy would, so
 * `@aws-cdk/core:validateAgainstDefaultRules` applies: an error of CDK's built-in CloudFormation
 * validation fails synth. Its warnings are only printed, so this script also reads each app's
 * validation report and fails on any finding left in it, whatever its severity. cfn-lint then
 * reads the `*.template.json` files (.ci/run; settings in .cfnlintrc).
 */

const ROOT = path.resolve(import.meta.dirname, '..');
export const TEMPLATES_DIR = path.join(ROOT, '.build', 'templates');

export const APPS = {
  default: 'tsx bin/app.ts',
  calls: 'tsx scripts/calls-app.ts',
} as const;

interface Violation {
  readonly ruleName?: string;
  readonly description?: string;
  readonly severity?: string;
  readonly violatingConstructs?: readonly { readonly constructPath?: string }[];
}

interface ValidationReport {
  readonly pluginReports?: readonly {
    readonly pluginName?: string;
    readonly conclusion?: string;
    readonly violations?: readonly Violation[];
  }[];
}

/**
 * Every finding of a CDK validation report (`validation-report.json`), one line each: CDK's
 * CloudFormation validation and any other plugin (cdk-nag), errors and warnings alike.
 * Acknowledged findings are not in the report.
 */
export function validationFindings(report: ValidationReport): string[] {
  return (report.pluginReports ?? []).flatMap((plugin) =>
    (plugin.violations ?? []).map((v) => {
      const where = (v.violatingConstructs ?? []).map((c) => c.constructPath).join(', ');
      return `${(v.severity ?? 'finding').toUpperCase()} ${plugin.pluginName ?? 'plugin'} ${v.ruleName ?? ''}: ${v.description ?? ''}${where ? ` (${where})` : ''}`;
    }),
  );
}

/** Synthesizes one app into .build/templates/<name>; returns its problems (none: it passed). */
export function synthesize(name: keyof typeof APPS): string[] {
  const outdir = path.join(TEMPLATES_DIR, name);
  rmSync(outdir, { recursive: true, force: true });
  const bin = path.join(ROOT, 'node_modules', '.bin');
  const result = spawnSync(
    process.execPath,
    [
      path.join(ROOT, 'node_modules', 'aws-cdk', 'bin', 'cdk'),
      'synth',
      '--quiet',
      '--app',
      APPS[name],
      '--output',
      outdir,
    ],
    {
      cwd: ROOT,
      // The app command runs through a shell: tsx (and Node 22) from node_modules/.bin.
      env: { ...process.env, PATH: `${bin}${path.delimiter}${process.env.PATH ?? ''}` },
      stdio: ['ignore', 'inherit', 'inherit'],
    },
  );
  if (result.status !== 0) return [`cdk synth of ${APPS[name]} failed (exit ${result.status})`];
  const reportFile = path.join(outdir, 'validation-report.json');
  if (!existsSync(reportFile))
    return [`${reportFile} is missing: was CDK's validation turned off?`];
  const findings = validationFindings(JSON.parse(readFileSync(reportFile, 'utf8')));
  const templates = readdirSync(outdir).filter((f) => f.endsWith('.template.json'));
  if (templates.length === 0) findings.push(`no template in ${outdir}`);
  return findings;
}

function main(): number {
  let failed = false;
  for (const name of Object.keys(APPS) as (keyof typeof APPS)[]) {
    const problems = synthesize(name);
    const where = path.relative(ROOT, path.join(TEMPLATES_DIR, name));
    if (problems.length === 0) {
      process.stdout.write(`templates: ${name} (${APPS[name]}) → ${where}: no findings\n`);
      continue;
    }
    failed = true;
    process.stderr.write(`templates: ${name} (${APPS[name]}) → ${where}:\n`);
    for (const problem of problems) process.stderr.write(`  ${problem}\n`);
  }
  return failed ? 1 : 0;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url))
  process.exitCode = main();
