/** JSON.parse that keeps integers past Number.MAX_SAFE_INTEGER exact, as decimal strings.
 * Uses the reviver's source text (supported by current Chromium, Firefox and Safari); where a
 * browser lacks it, numbers parse as usual. */

type ReviverContext = { source?: string };

export function parseJsonExact(text: string): unknown {
  return JSON.parse(text, function (this: unknown, _key: string, value: unknown, context?: ReviverContext) {
    if (
      typeof value === 'number' &&
      !Number.isSafeInteger(value) &&
      context?.source !== undefined &&
      /^-?\d+$/.test(context.source)
    ) {
      return context.source;
    }
    return value;
  } as (this: unknown, key: string, value: unknown) => unknown);
}
