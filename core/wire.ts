/**
 * A JSON frame from the Realtime API (or sent to it). Its shape depends on `type` and the server
 * adds fields over time, so it is read field by field with checks rather than typed up front.
 */
// biome-ignore lint/suspicious/noExplicitAny: untyped wire JSON, checked field by field where read.
export type WireEvent = Record<string, any>;
