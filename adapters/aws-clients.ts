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

/**
 * With an endpoint override (local mode), send every SQS call to that endpoint instead of the
 * queue URL's host: emulators hand out queue URLs such as `http://sqs.us-east-1.127.0.0.1:port/…`,
 * which are not valid URLs.
 */
export function sqsClientConfig(env: NodeJS.ProcessEnv = process.env) {
  const overridden = Boolean(env.AWS_ENDPOINT_URL_SQS || env.AWS_ENDPOINT_URL);
  return { ...awsClientConfig(), ...(overridden ? { useQueueUrlAsEndpoint: false } : {}) };
}
