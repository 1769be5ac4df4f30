import { consumerHandlerFromEnv } from '#adapters/runtime/consumer-from-env';

/** A category consumer without bundled user code. */
export const handler = consumerHandlerFromEnv(process.env);
