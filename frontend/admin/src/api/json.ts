/** JSON.parse that keeps integers past Number.MAX_SAFE_INTEGER exact, as decimal strings.
 * BigInt values (credits, micro-USD, minor units) are JSON numbers on the wire; JSON.parse would
 * round the ones past 2^53. Before parsing, such integer literals (outside strings) are quoted. */

const LONG_DIGITS = /\d{16}/;

function quoteUnsafeIntegers(text: string): string {
  let out = '';
  let copied = 0;
  let i = 0;
  const n = text.length;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 34 /* " */) {
      i += 1;
      while (i < n && text.charCodeAt(i) !== 34) i += text.charCodeAt(i) === 92 /* \ */ ? 2 : 1;
      i += 1;
    } else if (c === 45 /* - */ || (c >= 48 && c <= 57)) {
      const start = i;
      i += 1;
      while (i < n && /[0-9eE.+-]/.test(text.charAt(i))) i += 1;
      const literal = text.slice(start, i);
      if (/^-?\d{16,}$/.test(literal) && !Number.isSafeInteger(Number(literal))) {
        out += `${text.slice(copied, start)}"${literal}"`;
        copied = i;
      }
    } else {
      i += 1;
    }
  }
  return copied === 0 ? text : out + text.slice(copied);
}

export function parseJsonExact(text: string): unknown {
  return JSON.parse(LONG_DIGITS.test(text) ? quoteUnsafeIntegers(text) : text);
}
