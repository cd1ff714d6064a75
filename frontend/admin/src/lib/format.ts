/** Formatting of the API's exact numbers and instants for people. Money and credits are
 * integers on the wire (BigInt: a JSON number, or a string past 2^53); they are turned into
 * JavaScript bigints here and never into floating point. */

export type BigIntish = number | string | bigint;

const MICROS_PER_USD = 1_000_000n;

export function toBig(value: BigIntish): bigint {
  return typeof value === 'bigint' ? value : BigInt(value);
}

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });

export function formatInteger(value: BigIntish): string {
  return integer.format(toBig(value));
}

export function formatCredits(value: BigIntish): string {
  const n = toBig(value);
  return `${integer.format(n)} ${n === 1n || n === -1n ? 'credit' : 'credits'}`;
}

export function formatTokens(value: BigIntish): string {
  return `${integer.format(toBig(value))} tokens`;
}

const groupSeparator =
  new Intl.NumberFormat(undefined).formatToParts(1000).find((p) => p.type === 'group')?.value ?? ',';
const decimalSeparator =
  new Intl.NumberFormat(undefined).formatToParts(1.5).find((p) => p.type === 'decimal')?.value ?? '.';

function group(digits: string): string {
  return digits.replace(/\B(?=(\d{3})+(?!\d))/g, groupSeparator);
}

/** Micro-USD as dollars, exactly: at least 2 decimals, at most 6 (no rounding). */
export function formatMicrosUsd(value: BigIntish): string {
  const n = toBig(value);
  const sign = n < 0n ? '-' : '';
  const abs = n < 0n ? -n : n;
  const whole = (abs / MICROS_PER_USD).toString();
  let fraction = (abs % MICROS_PER_USD).toString().padStart(6, '0').replace(/0+$/, '');
  if (fraction.length < 2) fraction = fraction.padEnd(2, '0');
  return `${sign}$${group(whole)}${decimalSeparator}${fraction}`;
}

/** A decimal string of USD from the API (model prices, policies), shown as it is. */
export function formatDecimalUsd(value: string | null | undefined): string {
  if (value === null || value === undefined) return '—';
  const negative = value.startsWith('-');
  const [whole = '0', fraction = ''] = value.replace(/^-/, '').split('.');
  const trimmed = fraction.replace(/0+$/, '');
  const shown = trimmed.length < 2 ? trimmed.padEnd(2, '0') : trimmed;
  return `${negative ? '-' : ''}$${group(whole)}${decimalSeparator}${shown}`;
}

/** Parse "12.5" (USD) into micro-USD, exactly; null when it is not a plain amount. */
export function parseUsdToMicros(text: string): bigint | null {
  const match = /^(\d+)(?:\.(\d{1,6}))?$/.exec(text.trim());
  if (!match) return null;
  const [, whole = '0', fraction = ''] = match;
  return BigInt(whole) * MICROS_PER_USD + BigInt(fraction.padEnd(6, '0'));
}

/** Micro-USD as an editable dollar string ("12.5"). */
export function microsToUsdInput(value: BigIntish): string {
  const n = toBig(value);
  const whole = (n / MICROS_PER_USD).toString();
  const fraction = (n % MICROS_PER_USD).toString().padStart(6, '0').replace(/0+$/, '');
  return fraction ? `${whole}.${fraction}` : whole;
}

export function percentOf(part: BigIntish, whole: BigIntish): string {
  const w = toBig(whole);
  if (w === 0n) return '—';
  const tenths = (toBig(part) * 1000n) / w;
  const sign = tenths < 0n ? '-' : '';
  const abs = tenths < 0n ? -tenths : tenths;
  return `${sign}${abs / 10n}${decimalSeparator}${abs % 10n} %`;
}

const dateTime = new Intl.DateTimeFormat(undefined, {
  dateStyle: 'medium',
  timeStyle: 'medium',
});
const timeOnly = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });
const hourOnly = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export const viewerTimeZone = Intl.DateTimeFormat().resolvedOptions().timeZone;

export function formatDateTime(iso: string | null | undefined): string {
  if (!iso) return '—';
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateTime.format(date);
}

export function formatTime(date: Date): string {
  return timeOnly.format(date);
}

export function formatHour(iso: string): string {
  return hourOnly.format(new Date(iso));
}

/** A value for <input type="datetime-local"> in the viewer's zone. */
export function toLocalInput(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(
    date.getHours(),
  )}:${pad(date.getMinutes())}`;
}

/** <input type="datetime-local"> (viewer's zone) to an ISO instant; null when empty/invalid. */
export function fromLocalInput(value: string): string | null {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

export function startOfDay(date = new Date()): Date {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate());
}

export function startOfMonth(date = new Date()): Date {
  return new Date(date.getFullYear(), date.getMonth(), 1);
}

export function addDays(date: Date, days: number): Date {
  return new Date(date.getFullYear(), date.getMonth(), date.getDate() + days);
}

export function addMonths(date: Date, months: number): Date {
  return new Date(date.getFullYear(), date.getMonth() + months, 1);
}

export function newIdempotencyKey(prefix: string): string {
  return `${prefix}-${crypto.randomUUID()}`;
}

/** Whole numbers as typed in forms: digits only, optionally signed; BigInt-safe. */
export function parseWhole(text: string, { allowNegative = false } = {}): bigint | null {
  const trimmed = text.trim().replace(/[\s_,]/g, '');
  if (!(allowNegative ? /^-?\d+$/ : /^\d+$/).test(trimmed)) return null;
  const value = BigInt(trimmed);
  return value >= -(2n ** 63n) && value < 2n ** 63n ? value : null;
}

export function isDecimal(text: string): boolean {
  return /^\d+(\.\d+)?$/.test(text.trim());
}

/** "1 call", "2 calls", with the number grouped. */
export function countOf(value: BigIntish, one: string, many: string): string {
  const n = toBig(value);
  return `${integer.format(n)} ${n === 1n || n === -1n ? one : many}`;
}

/** Long ids (UUIDs) shortened for tables; the full id stays in the title. */
export function shortId(id: string): string {
  return id.length > 12 ? `${id.slice(0, 8)}…` : id;
}
