import type { ConsumedEvent, EventHandler } from 'openai-webhooks-cdk';

/**
 * A category handler for tests, loaded by an app config as `UserHandler.fromEntry(this file)`:
 * it keeps every event it is given. Local mode imports it in the test's own process, so the test
 * reads `received` directly.
 */
export const received: ConsumedEvent[] = [];

export const handler: EventHandler = async (event) => {
  received.push(event);
};

/** Under another export name, as `UserHandler.fromEntry(file, 'onEvent')` names it. */
export const onEvent: EventHandler = async (event) => {
  received.push({ ...event, type: `named:${event.type}` });
};
