import { ingressDepsFromEnv } from '#adapters/runtime/ingress-from-env';
import { createIngressHandler } from '#core/webhooks/receive-webhook';
import { serveFunctionUrl } from './stand-ins/function-url';

/**
 * The ingress alone in its own process, as Lambda runs it: its event loop is not shared with the
 * consumers. Configured by the environment a LocalPipeline builds (its `env`, plus the AWS
 * endpoint overrides); prints `{"url":…}` when it listens.
 */
const served = await serveFunctionUrl(
  createIngressHandler(ingressDepsFromEnv(process.env)),
  Number(process.env.PORT || 0),
);
process.stdout.write(`${JSON.stringify({ url: served.url })}\n`);
const stop = async () => {
  await served.stop();
  process.exit(0);
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
