const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/**
 * The text of UTF-8 bytes; undefined when they are not UTF-8 (a verified body may be any bytes:
 * the consumer keeps it as malformed, `owh events show` shows it as bytes).
 */
export function decodeUtf8(bytes: Uint8Array): string | undefined {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    return undefined;
  }
}
