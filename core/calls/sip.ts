/**
 * Caller and dialled number from a call's SIP headers. Headers are untrusted input: anything
 * unparseable becomes `undefined`, never an exception, and values are length-bounded.
 */
export interface SipHeader {
  readonly name: string;
  readonly value: string;
}

export interface CallParties {
  /** `+14155550123`, or the SIP user part when it is not a number. */
  readonly from: string | undefined;
  readonly to: string | undefined;
}

const MAX_HEADER_VALUE = 1024;
const URI_USER = /<?(?:sips?|tel):([^@;>?\s]+)/i;

export function sipHeadersOf(data: Readonly<Record<string, unknown>>): SipHeader[] {
  const raw = data.sip_headers;
  if (!Array.isArray(raw)) return [];
  return raw.flatMap((h) =>
    typeof h === 'object' && h !== null && typeof h.name === 'string' && typeof h.value === 'string'
      ? [{ name: h.name.slice(0, 128), value: h.value.slice(0, MAX_HEADER_VALUE) }]
      : [],
  );
}

/**
 * The call's media security from `realtime.call.incoming` (`data.sip_media_security`): `srtp`,
 * `rtp`, or absent. The SDK types ask to "handle unrecognized values as unknown", so any other
 * value is kept as `unknown` rather than trusted or dropped (node_modules/openai
 * resources/webhooks: RealtimeCallIncomingWebhookEvent.Data.sip_media_security).
 */
export type SipMediaSecurity = 'srtp' | 'rtp' | 'unknown';

export function sipMediaSecurityOf(
  data: Readonly<Record<string, unknown>>,
): SipMediaSecurity | undefined {
  const raw = data.sip_media_security;
  if (raw === undefined || raw === null) return undefined;
  return raw === 'srtp' || raw === 'rtp' ? raw : 'unknown';
}

/** First `From` and `To` header (case-insensitive, compact forms `f`/`t` included). */
export function callPartiesOf(headers: readonly SipHeader[]): CallParties {
  const find = (long: string, compact: string) =>
    headers.find((h) => {
      const name = h.name.trim().toLowerCase();
      return name === long || name === compact;
    })?.value;
  return { from: addressOf(find('from', 'f')), to: addressOf(find('to', 't')) };
}

/** `"Ann" <sip:+1 (415) 555-0123@host>;tag=x` → `+14155550123`; `sip:alice@host` → `alice`. */
export function addressOf(value: string | undefined): string | undefined {
  if (!value) return undefined;
  const match = URI_USER.exec(value);
  if (!match?.[1]) return undefined;
  let user: string;
  try {
    user = decodeURIComponent(match[1]);
  } catch {
    return undefined;
  }
  const compact = user.replace(/[\s().-]/g, '');
  if (/^\+?\d{3,20}$/.test(compact)) return compact;
  return /^[\w.!~*'+-]{1,64}$/.test(user) ? user.toLowerCase() : undefined;
}
