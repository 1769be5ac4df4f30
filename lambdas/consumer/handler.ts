import { consumerHandlerFromEnv } from './runtime';

/** A category consumer without bundled user code. */
export const handler = consumerHandlerFromEnv(process.env);
