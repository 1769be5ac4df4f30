/** A rejected input: the HTTP status and the `{error:{code,message}}` the caller sees. */
export interface Failure<Code extends string = string> {
  readonly ok: false;
  readonly status: number;
  readonly code: Code;
  readonly message: string;
}
