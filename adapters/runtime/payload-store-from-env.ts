import { ENV } from '#core/env';
import type { PayloadStore } from '#core/ports/webhooks';

/**
 * The claim-check bucket, when the stack has one (`PAYLOAD_BUCKET`). The S3 client is loaded on
 * the first claim-checked body, not at cold start: almost every webhook is small, and the S3
 * client is a third of the ingress bundle, so loading it eagerly would slow every cold start
 * for a path few events take.
 */
export function payloadStoreFromEnv(env: NodeJS.ProcessEnv): { payloads?: PayloadStore } {
  const bucket = env[ENV.payloadBucket];
  if (!bucket) return {};
  let loading: Promise<PayloadStore> | undefined;
  const store = () => {
    loading ??= import('../s3-payload-store').then(
      ({ s3PayloadStore }) => s3PayloadStore(bucket),
      (error: unknown) => {
        loading = undefined;
        throw error;
      },
    );
    return loading;
  };
  return {
    payloads: {
      put: async (body) => (await store()).put(body),
      get: async (ref) => (await store()).get(ref),
    },
  };
}
