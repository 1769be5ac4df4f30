import type { LambdaFunctionURLResult } from 'aws-lambda';

const JSON_HEADERS = { 'content-type': 'application/json' } as const;

export function jsonResponse(statusCode: number, body: unknown): LambdaFunctionURLResult {
  return { statusCode, headers: { ...JSON_HEADERS }, body: JSON.stringify(body) };
}

/** Every error has one shape, and never carries a secret or a stack trace. */
export function errorResponse(
  statusCode: number,
  code: string,
  message: string,
  extraHeaders: Record<string, string> = {},
): LambdaFunctionURLResult {
  return {
    statusCode,
    headers: { ...JSON_HEADERS, ...extraHeaders },
    body: JSON.stringify({ error: { code, message } }),
  };
}
