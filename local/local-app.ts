import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { CallsConfig } from '#core/calls/calls-config';
import { CATEGORIES, type Category } from '#core/webhooks/categories';
import type { UserHandler as EventHandler } from '#core/webhooks/process-event';
import type { AppConfigFile } from '../lib/app-config-file';
import { resolveConfig } from '../lib/config';
import type { LocalFunction } from './lambda-invoke-server';

/**
 * The app config as local mode runs it: the same props `cdk deploy` deploys, checked by the same
 * `resolveConfig` (an unknown prop or a bad value stops `npm start` as it stops synth).
 * - Handlers (`UserHandler.fromEntry`) are imported here and handed to the local consumers, which
 *   call them through `consumerDepsFromEnv(env, handler)`: the path the generated Lambda entry
 *   takes when deployed (lib/constructs/category-fanout.ts).
 * - Tools (`CallTool.fromEntry`) become local Lambda functions (local/lambda-invoke-server.ts),
 *   each under the function name its tool has in the calls config.
 */
export interface LocalApp {
  /** The app config file, as named. */
  readonly configFile: string;
  /** The handlers to run, per category. */
  readonly userHandlers: Partial<Record<Category, EventHandler>>;
  /** What runs, for the banner: `batch ← examples/handlers/batch.ts`. */
  readonly handlers: readonly string[];
  /** What the config holds that cannot run here (an existing Lambda function), for the banner. */
  readonly notRunLocally: readonly string[];
  /** The app's calls config (tools named by their local function names); none without `calls`. */
  readonly calls: CallsConfig | undefined;
  /** The tools written in this app, for the banner: `lookup_order ← examples/tools/lookup-order.ts`. */
  readonly tools: readonly string[];
  /** The local Lambda functions behind those tools, by function name. */
  readonly functions: Readonly<Record<string, LocalFunction>>;
}

export async function loadLocalApp(
  { file, props }: AppConfigFile,
  root: string = process.cwd(),
): Promise<LocalApp> {
  const config = resolveConfig(props);
  const userHandlers: Partial<Record<Category, EventHandler>> = {};
  const handlers: string[] = [];
  const notRunLocally: string[] = [];
  for (const category of CATEGORIES) {
    const source = config.categories[category].userHandler?.source;
    if (!source) continue;
    if (source.kind === 'function') {
      notRunLocally.push(`${category} handler (an existing Lambda function)`);
      continue;
    }
    const module = (await import(pathToFileURL(path.resolve(root, source.entry)).href)) as Record<
      string,
      unknown
    >;
    const handler = module[source.exportName];
    if (typeof handler !== 'function')
      throw new Error(
        `categories.${category}.userHandler: ${source.entry} does not export a function named ${source.exportName}.`,
      );
    userHandlers[category] = handler as EventHandler;
    handlers.push(
      `${category} ← ${source.entry}${source.exportName === 'handler' ? '' : ` (${source.exportName})`}`,
    );
  }
  const calls = config.calls;
  const functions: Record<string, LocalFunction> = {};
  const tools: string[] = [];
  for (const tool of calls?.entryTools ?? []) {
    const timeoutMs = calls?.config.tools.find((t) => t.name === tool.name)?.timeoutMs ?? 5000;
    // The deployed function's timeout: the call's wait, in whole seconds (CallToolFunction).
    functions[tool.functionName] = {
      entry: path.resolve(root, tool.entry),
      timeoutMs: Math.max(1, Math.ceil(timeoutMs / 1000)) * 1000,
    };
    tools.push(`${tool.name} ← ${tool.entry}`);
  }
  for (const tool of calls?.config.tools ?? [])
    if (!calls?.entryTools.some((t) => t.name === tool.name))
      notRunLocally.push(`${tool.name} tool (an existing Lambda function)`);
  return {
    configFile: file,
    userHandlers,
    handlers,
    notRunLocally,
    calls: calls?.config,
    tools,
    functions,
  };
}
