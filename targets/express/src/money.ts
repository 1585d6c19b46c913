// Money: an integer count of minor units (bigint) and a currency; never floating point (SPEC §0).

export const CURRENCIES = ["USD", "USDT", "USDC", "BTC"] as const;
export type Currency = (typeof CURRENCIES)[number];

const EXPONENT: Record<Currency, number> = { USD: 2, USDT: 6, USDC: 6, BTC: 8 };
export const MAX_MAJOR_UNITS = 1_000_000_000_000n;

export function exponent(c: Currency): number {
  return EXPONENT[c];
}

export function minorPerMajor(c: Currency): bigint {
  return 10n ** BigInt(EXPONENT[c]);
}

export function maxMinor(c: Currency): bigint {
  return MAX_MAJOR_UNITS * minorPerMajor(c);
}

export function parseCurrency(code: string): Currency | null {
  return (CURRENCIES as readonly string[]).includes(code) ? (code as Currency) : null;
}

export interface Money {
  minor: bigint;
  currency: Currency;
}

export function money(minor: bigint, currency: Currency): Money {
  return { minor, currency };
}

export class MoneyError extends Error {}

/** Parses a decimal string ("125.50") in `currency`, exactly. */
export function parseMoney(input: string, currency: Currency): Money {
  if (input.startsWith("-")) throw new MoneyError(`negative amount ${JSON.stringify(input)}: amounts are never negative`);
  const dot = input.indexOf(".");
  const whole = dot < 0 ? input : input.slice(0, dot);
  const fraction = dot < 0 ? null : input.slice(dot + 1);
  const digits = (s: string): boolean => s.length > 0 && /^[0-9]+$/.test(s);
  if (!digits(whole) || (fraction !== null && !digits(fraction))) {
    throw new MoneyError(`malformed amount ${JSON.stringify(input)}: expected digits with an optional '.' and fraction`);
  }
  const exp = EXPONENT[currency];
  const frac = fraction ?? "";
  const kept = frac.slice(0, exp);
  const extra = frac.slice(exp);
  if (/[^0]/.test(extra)) {
    throw new MoneyError(`amount ${JSON.stringify(input)} has more than ${exp} decimals, the precision of ${currency}`);
  }
  const trimmed = whole.replace(/^0+/, "");
  if (trimmed.length > 13) throw new MoneyError(`amount ${JSON.stringify(input)} exceeds the maximum of 10^12 ${currency}`);
  const major = trimmed.length === 0 ? 0n : BigInt(trimmed);
  const minorPart = kept.length === 0 ? 0n : BigInt(kept.padEnd(exp, "0"));
  const minor = major * minorPerMajor(currency) + minorPart;
  if (minor > maxMinor(currency)) throw new MoneyError(`amount ${JSON.stringify(input)} exceeds the maximum of 10^12 ${currency}`);
  return { minor, currency };
}

/** "125.50" for 12550 USD minor units; negative amounts keep their sign. */
export function formatMoney(m: Money): string {
  const per = minorPerMajor(m.currency);
  const negative = m.minor < 0n;
  const abs = negative ? -m.minor : m.minor;
  const frac = (abs % per).toString().padStart(EXPONENT[m.currency], "0");
  return `${negative ? "-" : ""}${abs / per}.${frac}`;
}

/** floor(amount * bps / 10 000) (SPEC §0). */
export function platformFee(amountMinor: bigint, feeBps: bigint): bigint {
  return (amountMinor * feeBps) / 10_000n;
}

export function isHighRisk(m: Money, thresholdMajor: bigint): boolean {
  return m.minor >= thresholdMajor * minorPerMajor(m.currency);
}
