/**
 * Caller and dialled number from a call's SIP headers. Headers are untrusted input: OpenAI's SDK
 * calls `sip_headers` "untrusted call metadata" (node_modules/openai resources/webhooks:
 * RealtimeCallIncomingWebhookEvent.Data), anything unparseable becomes `undefined`, never an
 * exception, and values are length-bounded.
 *
 * `From` is whatever the caller's equipment put there: its number, and even more its display
 * name, are caller-chosen. `P-Asserted-Identity` (RFC 3325) is the identity a trusted trunk vouches
 * for; it is read only when the policy says the trunk is trusted (`trustAssertedIdentity`).
 */
export interface SipHeader {
  readonly name: string;
  readonly value: string;
}

/** Where the caller's identity came from: `From` (caller-chosen) or a trusted trunk's assertion. */
export type CallerSource = 'from' | 'asserted';

export interface CallParties {
  /**
   * The caller: an E.164 number (`+14155550123`), digits that could not be made E.164, or the
   * lowercase SIP user part when it is not a number (`alice`).
   */
  readonly from: string | undefined;
  /** The dialled number, read the same way. */
  readonly to: string | undefined;
  /** `asserted` only for `P-Asserted-Identity` from a trunk the policy trusts. */
  readonly callerSource: CallerSource;
}

export interface PartyOptions {
  /** Read the caller from `P-Asserted-Identity` when present (the trunk is trusted). @default false */
  readonly trustAssertedIdentity?: boolean;
  /** The country calling code numbers without `+` belong to (`'1'`, `'44'`). @default none */
  readonly defaultCountry?: string;
}

const MAX_HEADER_VALUE = 1024;

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

/**
 * The caller and the dialled number. `From` and `To` (compact forms `f`, `t`) are single-valued
 * (RFC 3261 §20.20, §20.39): two of either make that party unknown rather than picking one. With
 * `trustAssertedIdentity`, a parseable `P-Asserted-Identity` (one or two values, RFC 3325 §9.1;
 * the first that is a number wins) replaces `From` as the caller.
 */
export function callPartiesOf(
  headers: readonly SipHeader[],
  options: PartyOptions = {},
): CallParties {
  const values = (...names: string[]) =>
    headers.filter((h) => names.includes(h.name.trim().toLowerCase())).map((h) => h.value);
  const single = (long: string, compact: string) => {
    const found = values(long, compact);
    return found.length === 1 ? addressOf(found[0], options.defaultCountry) : undefined;
  };
  const to = single('to', 't');
  if (options.trustAssertedIdentity === true) {
    const asserted = assertedIdentityOf(values('p-asserted-identity'), options.defaultCountry);
    if (asserted !== undefined) return { from: asserted, to, callerSource: 'asserted' };
  }
  return { from: single('from', 'f'), to, callerSource: 'from' };
}

/** The first value of `P-Asserted-Identity` that is a number, else the first that parses. */
function assertedIdentityOf(
  headerValues: readonly string[],
  defaultCountry: string | undefined,
): string | undefined {
  const parties = headerValues
    .flatMap(splitHeaderValues)
    .map((v) => addressOf(v, defaultCountry))
    .filter((p): p is string => p !== undefined);
  return parties.find((p) => p.startsWith('+')) ?? parties[0];
}

/**
 * The party a `From`/`To`/`P-Asserted-Identity` value names: its URI (see `uriOfAddress`), read as
 * a number (`partyOfUri`). `"Ann" <sip:+1-415-555-0123@host>;tag=x` → `+14155550123`;
 * `sip:alice@host` → `alice`.
 */
export function addressOf(
  value: string | undefined,
  defaultCountry?: string | undefined,
): string | undefined {
  if (!value) return undefined;
  const uri = uriOfAddress(value);
  return uri === undefined ? undefined : partyOfUri(uri, defaultCountry);
}

/**
 * The URI of one `from-spec`/`to-spec` (RFC 3261 §20.10, grammar in §25.1):
 * `name-addr = [ display-name ] "<" addr-spec ">"`, or a bare `addr-spec`, then `;params`.
 * - A quoted display name is skipped whole, escapes included (`quoted-pair = "\" CHAR`), so a
 *   display name that looks like a URI (`"sip:+18005550100" <sip:…>`) is never read as one.
 * - An unquoted display name may not hold `"`, `<` or `>`.
 * - A bare addr-spec ends at the first `;` (header parameters): the RFC requires the name-addr
 *   form when the URI itself holds `;`, `,` or `?`.
 * - Anything after the URI other than `;params` (a second address, a comma list) is refused.
 */
export function uriOfAddress(value: string): string | undefined {
  if (hasControl(value)) return undefined;
  let rest = value.trim();
  if (rest.startsWith('"')) {
    let i = 1;
    for (;;) {
      if (i >= rest.length) return undefined;
      const c = rest[i];
      if (c === '\\') i += 2;
      else if (c === '"') break;
      else i++;
    }
    rest = rest.slice(i + 1).trimStart();
    if (!rest.startsWith('<')) return undefined;
  } else {
    const open = rest.indexOf('<');
    if (open > 0) {
      if (/["<>]/.test(rest.slice(0, open))) return undefined;
      rest = rest.slice(open);
    }
  }
  if (rest.startsWith('<')) {
    const close = rest.indexOf('>');
    if (close < 0) return undefined;
    const uri = rest.slice(1, close);
    const params = rest.slice(close + 1).trim();
    if (params !== '' && !params.startsWith(';')) return undefined;
    if (/[<>]/.test(params)) return undefined;
    return validUri(uri);
  }
  const semicolon = rest.indexOf(';');
  return validUri(semicolon >= 0 ? rest.slice(0, semicolon).trim() : rest);
}

function validUri(uri: string): string | undefined {
  return uri.length > 0 && !/[\s<>",]/.test(uri) ? uri : undefined;
}

/** A control character other than a tab (SIP's LWS): no header value needs one. */
function hasControl(text: string): boolean {
  for (const ch of text) {
    const code = ch.charCodeAt(0);
    if ((code < 0x20 && code !== 0x09) || code === 0x7f) return true;
  }
  return false;
}

/** Splits a comma list of addresses, ignoring commas inside quotes and `<…>`. */
function splitHeaderValues(value: string): string[] {
  const parts: string[] = [];
  let start = 0;
  let quoted = false;
  let angle = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i];
    if (quoted) {
      if (c === '\\') i++;
      else if (c === '"') quoted = false;
    } else if (c === '"') quoted = true;
    else if (c === '<') angle = true;
    else if (c === '>') angle = false;
    else if (c === ',' && !angle) {
      parts.push(value.slice(start, i));
      start = i + 1;
    }
  }
  parts.push(value.slice(start));
  return parts.map((p) => p.trim()).filter((p) => p.length > 0);
}

/**
 * The party a `sip:`, `sips:` or `tel:` URI names. The user part (percent-decoded, RFC 3261 §19.1.2)
 * or the telephone-subscriber (RFC 3966) is read as a number when it is one (`normalisedNumber`),
 * else kept as a lowercase user name (starting with a letter). A `sip:` URI without a user part counts only when its host
 * is itself a number (`sip:+14155550123`, which some trunks send). Other schemes: `undefined`.
 */
export function partyOfUri(uri: string, defaultCountry?: string | undefined): string | undefined {
  const scheme = /^(sips?|tel):/i.exec(uri);
  if (!scheme?.[1]) return undefined;
  const rest = uri.slice(scheme[0].length);
  const isTel = scheme[1].toLowerCase() === 'tel';
  let user: string;
  let numberOnly = isTel;
  if (isTel) {
    user = rest;
  } else {
    const at = rest.indexOf('@');
    if (at < 0) {
      user = rest.split(/[;?]/)[0] ?? '';
      numberOnly = true;
    } else {
      // A user part escapes its own `@`: a second one is not a SIP URI.
      if (rest.indexOf('@', at + 1) >= 0) return undefined;
      user = rest.slice(0, at).split(':')[0] ?? '';
    }
  }
  let decoded: string;
  try {
    decoded = decodeURIComponent(user);
  } catch {
    return undefined;
  }
  // A telephone-subscriber carries `;ext=`, `;isub=`, `;phone-context=` after the number.
  const [base = '', ...params] = decoded.split(';');
  const context = params
    .map((p) => /^phone-context=(\+[\d().-]+)$/i.exec(p.trim())?.[1])
    .find((c) => c !== undefined);
  // Something that reads as a number is a number or nothing: never a user name.
  if (isNumberLike(base)) return normalisedNumber(base, defaultCountry, context);
  if (numberOnly) return undefined;
  // A user name starts with a letter, so it never reads like (or prefix-matches) an E.164 number.
  return /^[a-z][\w.!~*'+-]{0,63}$/i.test(base) ? base.toLowerCase() : undefined;
}

/**
 * Visual separators of a phone number, dropped before reading it: RFC 3966's `-`, `.`, `(`, `)`,
 * and spaces (a percent-encoded space is not unusual in a SIP user part).
 */
const VISUAL_SEPARATORS = /[\s().-]/g;

/** Digits with an optional leading `+` once the visual separators are gone. */
function isNumberLike(text: string): boolean {
  return /^\+?\d+$/.test(text.replace(VISUAL_SEPARATORS, ''));
}

/**
 * A phone number in E.164 form (`+` and 3 to 15 digits); digits that cannot be made E.164 (see 4);
 * `undefined` when `text` is not a number or a `+` number of the wrong length. How a number
 * written without `+` is read:
 * 1. `00` (the ITU-T international prefix), or `011` when the default country is `1` (NANP):
 *    what follows is the international number (`0014155550123` → `+14155550123`).
 * 2. A RFC 3966 `phone-context=+…` of a local number: the context's digits go in front.
 * 3. With a default country (its calling code, `defaultCountry: '1'`): its trunk prefix is dropped
 *    (`1` for NANP, `0` elsewhere) and the calling code put in front; a number without the trunk
 *    prefix is taken as national too (`14155550123` and `4155550123` → `+14155550123`;
 *    `02079460958` with `'44'` → `+442079460958`).
 * 4. Otherwise the digits are kept as they are (they match no E.164 pattern).
 * Countries whose trunk prefix is not `0` or whose numbers keep a leading `0` (Italy) are not
 * modelled: for those, have the trunk send `+` numbers.
 */
export function normalisedNumber(
  text: string,
  defaultCountry?: string | undefined,
  phoneContext?: string | undefined,
): string | undefined {
  if (!isNumberLike(text)) return undefined;
  const compact = text.replace(VISUAL_SEPARATORS, '');
  const e164 = (digits: string) => (/^\d{3,15}$/.test(digits) ? `+${digits}` : undefined);
  if (compact.startsWith('+')) return e164(compact.slice(1));
  const international = defaultCountry === '1' ? ['011', '00'] : ['00'];
  const prefix = international.find((p) => compact.startsWith(p));
  if (prefix !== undefined) return e164(compact.slice(prefix.length));
  if (phoneContext !== undefined) return e164(phoneContext.replace(/\D/g, '') + compact);
  if (defaultCountry !== undefined && /^\d{1,3}$/.test(defaultCountry)) {
    const trunk = defaultCountry === '1' ? '1' : '0';
    const national = compact.startsWith(trunk) ? compact.slice(trunk.length) : compact;
    return e164(defaultCountry + national) ?? compact;
  }
  return compact;
}
