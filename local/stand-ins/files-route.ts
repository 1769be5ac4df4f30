import type { FileObject } from 'openai/resources/files';
import type { RouteHandler, RouteResult } from './openai-simulator';

/**
 * The Files API's metadata endpoints for the OpenAI simulator: `GET /v1/files/{file_id}` answers
 * the `FileObject` (openai-node resources/files.d.ts: id, object "file", bytes, created_at,
 * filename, purpose, status, expires_at), and `DELETE /v1/files/{file_id}` answers `FileDeleted`
 * (`{id, object: "file", deleted: true}`), after which the file is gone.
 *
 * Which files exist:
 * - the files a test or tool put here (`put`), as given;
 * - every file a simulated batch names (`input_file_id`, `output_file_id`, `error_file_id` of a
 *   batch the simulator holds), derived from that batch, so a `batch.completed` handler that
 *   fetches its output file finds it, as it would at OpenAI.
 * Any other id, or a deleted one, is a 404 with OpenAI's error body: type
 * `invalid_request_error`, param `id`, message `No such File object: <id>` (the shape openai-dotnet's
 * API reference test `FileDocs.RetrieveFile` expects for an unknown id: "HTTP 404
 * (invalid_request_error: ) Parameter: id … No such File object: file-abc123").
 */

interface RouteHost {
  route(method: string, pattern: RegExp, handler: RouteHandler): void;
}

const DAY_SECONDS = 86_400;

export class FilesSimulator {
  /** Files put here, by id; they win over what a batch implies. */
  readonly files = new Map<string, FileObject>();
  private readonly deleted = new Set<string>();

  /** `objects`: the simulator's API objects by `kind:id` (batches are `batch:<id>`). */
  constructor(private readonly objects: ReadonlyMap<string, Record<string, unknown>>) {}

  /** Adds (or replaces) a file; what is not given is filled in as the API would. */
  put(file: Partial<FileObject> & { readonly id: string }): FileObject {
    const createdAt = file.created_at ?? Math.floor(Date.now() / 1000);
    const full: FileObject = {
      object: 'file',
      bytes: 0,
      created_at: createdAt,
      filename: `${file.id}.jsonl`,
      purpose: 'user_data',
      status: 'processed',
      ...file,
    };
    this.files.set(file.id, full);
    this.deleted.delete(file.id);
    return full;
  }

  /** The file as `GET /v1/files/{id}` answers it; undefined when there is none. */
  get(id: string): FileObject | undefined {
    if (this.deleted.has(id)) return undefined;
    return this.files.get(id) ?? this.fromBatches(id);
  }

  /** As `DELETE /v1/files/{id}`: true if there was a file; then it is gone for good. */
  delete(id: string): boolean {
    const existed = this.get(id) !== undefined;
    this.files.delete(id);
    this.deleted.add(id);
    return existed;
  }

  /** Adds the routes to the simulator. */
  install(host: RouteHost): this {
    const id = /^\/v1\/files\/([^/]+)$/;
    host.route('GET', id, (_r, m) => {
      const fileId = decodeURIComponent(m[1] ?? '');
      const file = this.get(fileId);
      return file ? { status: 200, body: file } : noSuchFile(fileId);
    });
    host.route('DELETE', id, (_r, m) => {
      const fileId = decodeURIComponent(m[1] ?? '');
      return this.delete(fileId)
        ? { status: 200, body: { id: fileId, object: 'file', deleted: true } }
        : noSuchFile(fileId);
    });
    return this;
  }

  /** A file a simulated batch names, with metadata that follows from the batch. */
  private fromBatches(id: string): FileObject | undefined {
    for (const [key, batch] of this.objects) {
      if (!key.startsWith('batch:')) continue;
      const role =
        batch.input_file_id === id
          ? 'input'
          : batch.output_file_id === id
            ? 'output'
            : batch.error_file_id === id
              ? 'error'
              : undefined;
      if (role) return batchFile(id, role, batch);
    }
    return undefined;
  }
}

function batchFile(
  id: string,
  role: 'input' | 'output' | 'error',
  batch: Record<string, unknown>,
): FileObject {
  const seconds = (key: string) => (typeof batch[key] === 'number' ? batch[key] : undefined);
  const now = Math.floor(Date.now() / 1000);
  const batchCreated = seconds('created_at') ?? now;
  // An input file is uploaded before its batch; output and error files are written when it ends.
  const createdAt =
    role === 'input'
      ? batchCreated - 60
      : (seconds('completed_at') ??
        seconds('expired_at') ??
        seconds('cancelled_at') ??
        seconds('failed_at') ??
        now);
  const counts = (batch.request_counts ?? {}) as Record<string, unknown>;
  const count = (key: string) => (typeof counts[key] === 'number' ? counts[key] : 0);
  // One JSONL line per request: a plausible size, not zero for a batch that did work.
  const lines =
    role === 'input' ? count('total') : role === 'output' ? count('completed') : count('failed');
  const batchId = String(batch.id ?? '');
  return {
    id,
    object: 'file',
    bytes: Math.max(1, lines) * (role === 'error' ? 256 : 1024),
    created_at: createdAt,
    filename: role === 'input' ? 'batch_input.jsonl' : `${batchId}_${role}.jsonl`,
    // FileObject.purpose: `batch` for what was uploaded, `batch_output` for what a batch wrote.
    purpose: role === 'input' ? 'batch' : 'batch_output',
    status: 'processed',
    // Files with purpose=batch expire after 30 days by default (FileCreateParams.expires_after);
    // output and error files after `output_expires_after`, at most 30 days: the simulator uses 30.
    expires_at: createdAt + 30 * DAY_SECONDS,
  };
}

function noSuchFile(id: string): RouteResult {
  return {
    status: 404,
    body: {
      error: {
        message: `No such File object: ${id}`,
        type: 'invalid_request_error',
        param: 'id',
        code: null,
      },
    },
  };
}
