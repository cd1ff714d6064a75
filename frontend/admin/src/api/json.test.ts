import { describe, expect, it } from 'vitest';
import { parseJsonExact } from './json';

describe('parseJsonExact', () => {
  it('keeps integers past 2^53 exact, as strings', () => {
    const body = parseJsonExact('{"a": 9007199254740993, "b": 42, "c": 1.5, "d": [-9223372036854775808]}');
    expect(body).toEqual({ a: '9007199254740993', b: 42, c: 1.5, d: ['-9223372036854775808'] });
  });

  it('leaves everything else as JSON.parse would', () => {
    const text = '{"data": {"x": "9007199254740993", "y": null, "z": true}}';
    expect(parseJsonExact(text)).toEqual(JSON.parse(text));
  });
});

describe('parseJsonExact, strings and escapes', () => {
  it('leaves digits inside strings alone, escaped quotes included', () => {
    const text = '{"s": "id \\"12345678901234567890\\" here", "n": 12345678901234567890, "t": "9007199254740993"}';
    expect(parseJsonExact(text)).toEqual({ s: 'id "12345678901234567890" here', n: '12345678901234567890', t: '9007199254740993' });
  });

  it('keeps safe long numbers and decimals as numbers', () => {
    expect(parseJsonExact('[1234567890123456, 12345678901234567.5, 1e300]')).toEqual([1234567890123456, 12345678901234567.5, 1e300]);
  });
});
