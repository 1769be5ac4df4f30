import { ingressDepsFromEnv } from '#adapters/runtime/ingress-from-env';
import { createIngressHandler } from '#core/webhooks/receive-webhook';

export const handler = createIngressHandler(ingressDepsFromEnv(process.env));
