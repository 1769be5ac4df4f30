import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { App, CfnResource, Stack } from 'aws-cdk-lib';
import { VALIDATE_AGAINST_DEFAULT_RULES } from 'aws-cdk-lib/cx-api';
import { describe, expect, it } from 'vitest';
import { validationFindings } from '../../scripts/synth-templates';

/**
 * The template checks CI runs (scripts/synth-templates.ts, then cfn-lint): CDK's built-in
 * CloudFormation validation fails synth on its errors with cdk.json's flag, and the script fails
 * on any finding left in the report, warnings included. The check is shown to be able to fail.
 */

const ROOT = path.resolve(import.meta.dirname, '..', '..');
const FLAG = '@aws-cdk/core:validateAgainstDefaultRules';
const cdkJson = JSON.parse(readFileSync(path.join(ROOT, 'cdk.json'), 'utf8')) as {
  context: Record<string, unknown>;
};

/** An app whose queue breaks two schema rules (an unknown property, a value over its maximum). */
function badApp(context: Record<string, unknown>) {
  const outdir = mkdtempSync(path.join(tmpdir(), 'owh-templates-'));
  const app = new App({ outdir, context });
  const stack = new Stack(app, 'Bad');
  new CfnResource(stack, 'Queue', {
    type: 'AWS::SQS::Queue',
    properties: { VisibilityTimeout: 999_999, Bogus: true },
  });
  return { app, outdir };
}

const report = (outdir: string) =>
  JSON.parse(readFileSync(path.join(outdir, 'validation-report.json'), 'utf8'));

describe('template checks', () => {
  it('cdk.json turns on validateAgainstDefaultRules, a flag this aws-cdk-lib knows', () => {
    expect(cdkJson.context[FLAG]).toBe(true);
    expect(VALIDATE_AGAINST_DEFAULT_RULES).toBe(FLAG);
  });

  it('with the flag, a CloudFormation finding fails synth', () => {
    const { app, outdir } = badApp(cdkJson.context);
    expect(() => app.synth()).toThrow(
      /ERROR VisibilityTimeout: 999999 is greater than the maximum/,
    );
    expect(validationFindings(report(outdir)).join('\n')).toMatch(
      /ERROR CloudFormation Validate F3034: VisibilityTimeout: 999999 is greater than the maximum of 43200 \(Bad\/Queue\)/,
    );
  });

  it('without it CDK only warns, and the script still counts every finding', () => {
    const { app, outdir } = badApp({});
    app.synth();
    const findings = validationFindings(report(outdir));
    expect(findings).toHaveLength(2);
    expect(findings.every((f) => f.startsWith('WARNING CloudFormation Validate F30'))).toBe(true);
  });

  it('finds nothing in a report without violations', () => {
    expect(validationFindings({ pluginReports: [] })).toEqual([]);
    expect(
      validationFindings({ pluginReports: [{ pluginName: 'AwsSolutions', violations: [] }] }),
    ).toEqual([]);
  });
});
