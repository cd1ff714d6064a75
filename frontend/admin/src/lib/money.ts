/** Plan and package prices: integer minor units of an ISO 4217 currency (1900 = $19.00 in
 * USD, 1900 = ¥1,900 in JPY), converted with the currency's own number of decimals and never
 * through floating point. */
import { toBig, type BigIntish } from './format';

const digitsCache = new Map<string, number>();

export function currencyDigits(currency: string): number {
  const code = currency.toUpperCase();
  let digits = digitsCache.get(code);
  if (digits === undefined) {
    try {
      digits = new Intl.NumberFormat('en', { style: 'currency', currency: code }).resolvedOptions().maximumFractionDigits ?? 2;
    } catch {
      digits = 2;
    }
    digitsCache.set(code, digits);
  }
  return digits;
}

/** Minor units as a decimal string in major units: 1900 USD -> "19.00". */
export function minorToMajor(amount: BigIntish, currency: string): string {
  const digits = currencyDigits(currency);
  const n = toBig(amount);
  const sign = n < 0n ? '-' : '';
  const abs = n < 0n ? -n : n;
  if (digits === 0) return `${sign}${abs}`;
  const scale = 10n ** BigInt(digits);
  return `${sign}${abs / scale}.${(abs % scale).toString().padStart(digits, '0')}`;
}

/** "19.99" in USD -> 1999n; null when it is not an amount with at most the currency's decimals. */
export function majorToMinor(text: string, currency: string): bigint | null {
  const digits = currencyDigits(currency);
  const match = /^(\d+)(?:\.(\d+))?$/.exec(text.trim());
  if (!match) return null;
  const [, whole = '0', fraction = ''] = match;
  if (fraction.length > digits) return null;
  return BigInt(whole) * 10n ** BigInt(digits) + BigInt(fraction.padEnd(digits, '0') || '0');
}

/** 1900, "USD" -> "$19.00", formatted by the viewer's locale from an exact decimal string. */
export function formatMinor(amount: BigIntish, currency: string): string {
  const major = minorToMajor(amount, currency);
  try {
    const format = new Intl.NumberFormat(undefined, { style: 'currency', currency: currency.toUpperCase() });
    // A decimal string is formatted exactly (Intl.NumberFormat v3).
    return format.format(major as unknown as number);
  } catch {
    return `${major} ${currency.toUpperCase()}`;
  }
}

export function isCurrencyCode(text: string): boolean {
  if (!/^[A-Za-z]{3}$/.test(text.trim())) return false;
  try {
    new Intl.NumberFormat('en', { style: 'currency', currency: text.trim().toUpperCase() });
    return true;
  } catch {
    return false;
  }
}
