// The double-entry ledger (SPEC §2): append-only, per currency.

import { Currency, Money, formatMoney } from "../money";

export type Provider = "shkeeper" | "request_network" | "manual_wallet";
export const PROVIDERS: readonly Provider[] = ["shkeeper", "request_network", "manual_wallet"];

export function parseProvider(name: string): Provider | null {
  return (PROVIDERS as readonly string[]).includes(name) ? (name as Provider) : null;
}

/** An account; escrow-bound accounts carry the escrow's number, buyer credit the user's. */
export type Account =
  | { kind: "provider"; provider: Provider }
  | { kind: "escrow" | "payout" | "refund"; escrow: number }
  | { kind: "buyer_credit"; user: number }
  | { kind: "suspense" }
  | { kind: "fees" };

export interface Posting {
  account: Account;
  currency: Currency;
  /** Debit positive, credit negative (minor units). */
  amount: bigint;
}

export function debit(account: Account, m: Money): Posting {
  return { account, currency: m.currency, amount: m.minor };
}

export function credit(account: Account, m: Money): Posting {
  return { account, currency: m.currency, amount: -m.minor };
}

export type EntryKind = "payment" | "suspense" | "release" | "refund" | "payout_confirmed" | "refund_confirmed";

export interface Entry {
  seq: number;
  /** "provider:event" or "action:id" (LED-6). */
  cause: string;
  escrow: number | null;
  time: number;
  kind: EntryKind;
  invoice: string | null;
  postings: Posting[];
}

export class Ledger {
  private readonly entries: Entry[] = [];

  append(cause: string, escrow: number | null, time: number, kind: EntryKind, invoice: string | null, postings: Posting[]): void {
    // LED-1: every entry balances per currency; a bug here must never write a lopsided entry.
    const sums = new Map<Currency, bigint>();
    for (const p of postings) sums.set(p.currency, (sums.get(p.currency) ?? 0n) + p.amount);
    for (const [, sum] of sums) if (sum !== 0n) throw new Error("unbalanced ledger entry");
    this.entries.push({ seq: this.entries.length, cause, escrow, time, kind, invoice, postings });
  }

  all(): readonly Entry[] {
    return this.entries;
  }
}

export function postingAmount(p: Posting): string {
  return formatMoney({ minor: p.amount, currency: p.currency });
}
