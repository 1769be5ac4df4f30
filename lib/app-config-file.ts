import * as fs from 'node:fs';
import * as path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { OpenAiWebhooksStackProps } from './openai-webhooks-stack';

/** The app config both `cdk` (bin/app.ts) and `npm start` (local/main.ts) run. */
export const DEFAULT_APP_CONFIG = 'bin/app-config.ts';

/** The variable that names another app config file (`OWH_APP_CONFIG=examples/app-config.ts`). */
export const APP_CONFIG_VARIABLE = 'OWH_APP_CONFIG';

export interface AppConfigFile {
  /** The file, as the user named it (relative to the project root) or the default. */
  readonly file: string;
  readonly props: OpenAiWebhooksStackProps;
}

/**
 * Loads the app config: `OWH_APP_CONFIG` if set, else bin/app-config.ts, relative to `root`. The
 * module exports the props as `appConfig` (or as its default export). Throws with a sentence
 * that names the file when it is missing or exports no props.
 */
export async function loadAppConfig(env: NodeJS.ProcessEnv, root: string): Promise<AppConfigFile> {
  const file = env[APP_CONFIG_VARIABLE] || DEFAULT_APP_CONFIG;
  const absolute = path.resolve(root, file);
  if (!fs.existsSync(absolute))
    throw new Error(
      `app config ${file} does not exist${env[APP_CONFIG_VARIABLE] ? ` (${APP_CONFIG_VARIABLE})` : ''}.`,
    );
  const module = (await import(pathToFileURL(absolute).href)) as {
    appConfig?: unknown;
    default?: unknown;
  };
  const props = module.appConfig ?? module.default;
  if (props === null || typeof props !== 'object' || Array.isArray(props))
    throw new Error(
      `app config ${file} must export its props as \`export const appConfig: OpenAiWebhooksStackProps = { … }\`.`,
    );
  return { file, props: props as OpenAiWebhooksStackProps };
}
