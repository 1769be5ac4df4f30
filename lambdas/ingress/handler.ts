import { createIngressHandler } from './receive-webhook';
import { ingressDepsFromEnv } from './runtime';

export const handler = createIngressHandler(ingressDepsFromEnv(process.env));
