/**
 * Client settings shared by every AWS SDK client. Endpoints are overridable per service
 * (`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL_SQS`, …), which the SDK reads itself; local mode
 * and the tests use that to point at the stand-ins.
 */
export function awsClientConfig(endpoint?: string) {
  return {
    // Fail fast instead of hanging the webhook acknowledgement.
    maxAttempts: 3,
    ...(endpoint ? { endpoint } : {}),
  };
}
