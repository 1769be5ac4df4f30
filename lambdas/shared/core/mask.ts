/**
 * Masks phone numbers and SIP URIs' user parts so logs never carry a caller's number.
 * Keeps the last two digits, which is enough to tell calls apart when debugging.
 */
const PHONE_PATTERN = /\+?\d[\d\s().-]{5,}\d/g;
const SIP_USER_PATTERN = /\b(sips?|tel):([^@;>\s]+)/gi;

export function maskPhoneNumbers(text: string): string {
  return text
    .replace(
      SIP_USER_PATTERN,
      (_m, scheme: string, user: string) => `${scheme}:${maskDigits(user)}`,
    )
    .replace(PHONE_PATTERN, (m) => maskDigits(m));
}

function maskDigits(value: string): string {
  const digits = value.replace(/\D/g, '');
  if (digits.length < 4) return value.replace(/[^@]/g, '*');
  return `${value.startsWith('+') ? '+' : ''}***${digits.slice(-2)}`;
}
