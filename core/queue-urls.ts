import { ENV, requireEnv } from './env';
import { CATEGORIES, type Category } from './webhooks/categories';

/** `QUEUE_URLS` is a JSON object with one queue URL per category. */
export function parseQueueUrls(env: NodeJS.ProcessEnv): Record<Category, string> {
  const parsed: unknown = JSON.parse(requireEnv(env, ENV.queueUrls));
  const urls = parsed as Record<string, unknown>;
  for (const category of CATEGORIES) {
    if (typeof urls[category] !== 'string') {
      throw new Error(`${ENV.queueUrls} lacks a queue URL for "${category}".`);
    }
  }
  return urls as Record<Category, string>;
}
