/**
 * Masks phone numbers so logs never carry a caller's number: E.164 numbers (`+14155550123`,
 * `+44 20 7946 0958`) and the user part of `sip:`/`sips:`/`tel:` URIs. Keeps the last two digits,
 * enough to tell calls apart. Dates, ids and counts are left alone: only a leading `+` or a URI
 * scheme marks a number as a phone number.
 */

const E164_PATTERN = /\+\d[\d\s().-]{5,}\d/g;
const SIP_USER_PATTERN = /\b(sips?|tel):([^@;>\s]+)/gi;
const ANY_DIGITS = /\d[\d\s().-]{2,}\d/g;

export function maskPhoneNumbers(text: string): string {
  return text
    .replace(
      SIP_USER_PATTERN,
      (_m, scheme: string, user: string) => `${scheme}:${maskDigits(user)}`,
    )
    .replace(E164_PATTERN, (m) => maskDigits(m));
}

/** For values known to hold a number (a `From` header, a `caller` field): mask every digit run. */
export function maskAllNumbers(text: string): string {
  return maskPhoneNumbers(text).replace(ANY_DIGITS, (m) => maskDigits(m));
}

function maskDigits(value: string): string {
  const digits = value.replace(/\D/g, '');
  if (digits.length < 4) return value.replace(/[^@]/g, '*');
  return `${value.startsWith('+') ? '+' : ''}***${digits.slice(-2)}`;
}
