import { createHash } from 'node:crypto';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import type { PayloadStore } from '#core/ports/webhooks';
import type { PayloadRef } from '#core/webhooks/queue-message';
import { hooked, s3ClientConfig } from './aws-clients';

/**
 * The claim-check bucket (the S3 claim-check pattern: the large body goes to S3, the message
 * carries a reference). Keys are the body's SHA-256, so a redelivery writes the same object
 * again instead of a second one, and a reference names exactly one content. The bucket's
 * lifecycle rule expires objects after the stack's `eventRetention`, like the event items.
 */
export class S3PayloadStore implements PayloadStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  async put(body: Uint8Array): Promise<PayloadRef> {
    const sha256 = createHash('sha256').update(body).digest('hex');
    const key = `payloads/${sha256}`;
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: key,
        Body: body,
        ContentLength: body.length,
        ContentType: 'application/json',
      }),
    );
    return { bucket: this.bucket, key, bytes: body.length, sha256 };
  }

  async get(ref: PayloadRef): Promise<Buffer> {
    const result = await this.client.send(
      new GetObjectCommand({ Bucket: ref.bucket, Key: ref.key }),
    );
    if (!result.Body) throw new Error(`S3 returned no body for ${ref.key}.`);
    return Buffer.from(await result.Body.transformToByteArray());
  }
}

/** The store on an S3 client built from the environment (`AWS_ENDPOINT_URL_S3` in local mode). */
export function s3PayloadStore(bucket: string): S3PayloadStore {
  return new S3PayloadStore(hooked(new S3Client(s3ClientConfig(process.env)), 's3'), bucket);
}
