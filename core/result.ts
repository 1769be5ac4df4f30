/** A rejected input: the HTTP status and the `{error:{code,message}}` the caller sees. */
export interface Failure {
  readonly ok: false;
  readonly status: number;
  readonly code: string;
  readonly message: string;
}
