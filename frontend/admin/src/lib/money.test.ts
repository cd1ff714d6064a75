import { describe, expect, it } from 'vitest';
import { currencyDigits, formatMinor, isCurrencyCode, majorToMinor, minorToMajor } from './money';

describe('minor units', () => {
  it('knows each currency’s decimals', () => {
    expect(currencyDigits('USD')).toBe(2);
    expect(currencyDigits('JPY')).toBe(0);
    expect(currencyDigits('KWD')).toBe(3);
  });

  it('converts both ways exactly', () => {
    expect(minorToMajor(1900, 'USD')).toBe('19.00');
    expect(minorToMajor(700, 'JPY')).toBe('700');
    expect(minorToMajor(-5, 'EUR')).toBe('-0.05');
    expect(majorToMinor('19.99', 'USD')).toBe(1999n);
    expect(majorToMinor('19.999', 'USD')).toBeNull();
    expect(majorToMinor('700', 'JPY')).toBe(700n);
    expect(majorToMinor('7.5', 'JPY')).toBeNull();
    expect(majorToMinor('92233720368547758.07', 'USD')).toBe(9223372036854775807n);
  });

  it('formats with the currency symbol, from an exact decimal', () => {
    expect(formatMinor(1900, 'USD')).toBe('$19.00');
    expect(formatMinor(700, 'JPY')).toBe('¥700');
    expect(formatMinor('9007199254740993', 'USD')).toBe('$90,071,992,547,409.93');
  });

  it('checks currency codes', () => {
    expect(isCurrencyCode('eur')).toBe(true);
    expect(isCurrencyCode('EURO')).toBe(false);
    expect(isCurrencyCode('12A')).toBe(false);
  });
});
