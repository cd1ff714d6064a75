import { describe, expect, it } from 'vitest';
import {
  countOf,
  formatCredits,
  formatDecimalUsd,
  formatMicrosUsd,
  fromLocalInput,
  microsToUsdInput,
  parseUsdToMicros,
  parseWhole,
  percentOf,
  toLocalInput,
} from './format';

describe('micro-USD', () => {
  it('shows dollars exactly, two to six decimals', () => {
    expect(formatMicrosUsd(0)).toBe('$0.00');
    expect(formatMicrosUsd(7_500)).toBe('$0.0075');
    expect(formatMicrosUsd(1_000_000)).toBe('$1.00');
    expect(formatMicrosUsd(-268)).toBe('-$0.000268');
    expect(formatMicrosUsd(1_234_567_891)).toBe('$1,234.567891');
  });

  it('never goes through floating point, even past 2^53', () => {
    expect(formatMicrosUsd('9223372036854775807')).toBe('$9,223,372,036,854.775807');
  });

  it('parses dollars typed in forms back to the same micros', () => {
    expect(parseUsdToMicros('12.5')).toBe(12_500_000n);
    expect(parseUsdToMicros('0.000001')).toBe(1n);
    expect(parseUsdToMicros('1.0000001')).toBeNull();
    expect(parseUsdToMicros('-1')).toBeNull();
    expect(parseUsdToMicros('abc')).toBeNull();
    expect(microsToUsdInput(12_500_000)).toBe('12.5');
    expect(microsToUsdInput(3_000_000)).toBe('3');
  });

  it('shows API decimals as they are', () => {
    expect(formatDecimalUsd('2.5')).toBe('$2.50');
    expect(formatDecimalUsd('0.000150')).toBe('$0.00015');
    expect(formatDecimalUsd('1500')).toBe('$1,500.00');
    expect(formatDecimalUsd(null)).toBe('—');
  });
});

describe('credits and counts', () => {
  it('says credit or credits', () => {
    expect(formatCredits(1)).toBe('1 credit');
    expect(formatCredits(1_000)).toBe('1,000 credits');
    expect(formatCredits('123456789012345678')).toBe('123,456,789,012,345,678 credits');
    expect(countOf(1, 'call', 'calls')).toBe('1 call');
    expect(countOf(0, 'call', 'calls')).toBe('0 calls');
  });

  it('reads whole numbers as typed, within 64 bits', () => {
    expect(parseWhole('1 000')).toBe(1000n);
    expect(parseWhole('1,000')).toBe(1000n);
    expect(parseWhole('-5')).toBeNull();
    expect(parseWhole('-5', { allowNegative: true })).toBe(-5n);
    expect(parseWhole('1.5')).toBeNull();
    expect(parseWhole('9223372036854775808')).toBeNull();
  });

  it('works out percentages exactly, to a tenth', () => {
    expect(percentOf(2_329, 102_067)).toBe('2.2 %');
    expect(percentOf(1, 0)).toBe('—');
  });
});

describe('dates in the viewer zone', () => {
  it('round-trips a datetime-local value', () => {
    const iso = fromLocalInput('2026-11-21T09:30');
    expect(iso).toBe(new Date(2026, 10, 21, 9, 30).toISOString());
    expect(toLocalInput(new Date(iso ?? ''))).toBe('2026-11-21T09:30');
    expect(fromLocalInput('')).toBeNull();
  });
});
