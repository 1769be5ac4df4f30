import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OpenAiSimulator } from '../../local/stand-ins/openai-simulator';

/**
 * The OpenAI simulator's Files API metadata routes (local/stand-ins/files-route.ts) over HTTP:
 * `GET /v1/files/{id}` answers a `FileObject` (openai-node resources/files.d.ts) for the files its
 * batches name, and OpenAI's 404 error body for any other id.
 */

let simulator: OpenAiSimulator;
let base: string;

beforeAll(async () => {
  simulator = new OpenAiSimulator();
  base = await simulator.start();
});

afterAll(async () => {
  await simulator.stop();
});

const call = async (method: string, path: string) => {
  const response = await fetch(`${base.replace(/\/v1$/, '')}${path}`, {
    method,
    headers: { authorization: `Bearer ${simulator.apiKey}` },
  });
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

describe('GET /v1/files/{id} in the OpenAI simulator', () => {
  it('answers a FileObject for each file a batch names: input, output and error', async () => {
    simulator.setObject('batch', 'batch_files01', {
      id: 'batch_files01',
      object: 'batch',
      status: 'completed',
      input_file_id: 'file-in-files01',
      output_file_id: 'file-out-files01',
      error_file_id: 'file-err-files01',
      request_counts: { total: 10, completed: 7, failed: 3 },
      created_at: 1_800_000_000,
      completed_at: 1_800_003_600,
    });
    const output = await call('GET', '/v1/files/file-out-files01');
    expect(output).toEqual({
      status: 200,
      body: {
        id: 'file-out-files01',
        object: 'file',
        bytes: 7 * 1024,
        created_at: 1_800_003_600,
        filename: 'batch_files01_output.jsonl',
        purpose: 'batch_output',
        status: 'processed',
        expires_at: 1_800_003_600 + 30 * 86_400,
      },
    });
    expect((await call('GET', '/v1/files/file-err-files01')).body).toMatchObject({
      filename: 'batch_files01_error.jsonl',
      purpose: 'batch_output',
      bytes: 3 * 256,
    });
    // The uploaded input: purpose `batch`, created before its batch.
    expect((await call('GET', '/v1/files/file-in-files01')).body).toMatchObject({
      purpose: 'batch',
      created_at: 1_800_000_000 - 60,
    });
  });

  it('has the files of a batch it served by default (one nobody set), and keeps that batch as served', async () => {
    const batch = await call('GET', '/v1/batches/batch_default7');
    const again = await call('GET', '/v1/batches/batch_default7');
    expect(again.body).toEqual(batch.body);
    const output = await call('GET', `/v1/files/${String(batch.body.output_file_id)}`);
    expect(output.status).toBe(200);
    expect(output.body).toMatchObject({ object: 'file', purpose: 'batch_output' });
  });

  it("answers an unknown id 404 with OpenAI's error body", async () => {
    expect(await call('GET', '/v1/files/file-nobody')).toEqual({
      status: 404,
      body: {
        error: {
          message: 'No such File object: file-nobody',
          type: 'invalid_request_error',
          param: 'id',
          code: null,
        },
      },
    });
  });

  it('serves a file put there as given, and a deleted file no more', async () => {
    simulator.files.put({ id: 'file-put01', bytes: 42, purpose: 'user_data', filename: 'a.txt' });
    expect((await call('GET', '/v1/files/file-put01')).body).toMatchObject({
      id: 'file-put01',
      object: 'file',
      bytes: 42,
      filename: 'a.txt',
      status: 'processed',
    });
    // FileDeleted, then a 404 for the same id (a file a batch names included).
    expect(await call('DELETE', '/v1/files/file-put01')).toEqual({
      status: 200,
      body: { id: 'file-put01', object: 'file', deleted: true },
    });
    expect((await call('GET', '/v1/files/file-put01')).status).toBe(404);
    expect((await call('DELETE', '/v1/files/file-put01')).status).toBe(404);
    expect((await call('DELETE', '/v1/files/file-err-files01')).status).toBe(200);
    expect((await call('GET', '/v1/files/file-err-files01')).status).toBe(404);
  });

  it('needs the API key, as every API route does', async () => {
    const response = await fetch(`${base}/files/file-out-files01`);
    expect(response.status).toBe(401);
  });
});
