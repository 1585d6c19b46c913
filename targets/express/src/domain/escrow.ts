// The escrow state machine (SPEC §1): the table every change of state goes through.

export type EscrowState =
  | "awaiting_payment"
  | "payment_review"
  | "funded"
  | "delivered"
  | "disputed"
  | "release_pending"
  | "released"
  | "refund_pending"
  | "refunded"
  | "cancelled"
  | "expired";

/** This backend's wire names (its own dialect): internal name -> wire name. */
export const WIRE_STATE: Record<EscrowState, string> = {
  awaiting_payment: "AWAITING_PAYMENT",
  payment_review: "PAYMENT_REVIEW",
  funded: "FUNDED",
  delivered: "DELIVERED",
  disputed: "IN_DISPUTE",
  release_pending: "RELEASING",
  released: "RELEASED",
  refund_pending: "REFUNDING",
  refunded: "REFUNDED",
  cancelled: "CANCELLED",
  expired: "EXPIRED",
};

export function parseWireState(name: string): EscrowState | null {
  for (const [state, wire] of Object.entries(WIRE_STATE)) if (wire === name) return state as EscrowState;
  return null;
}

export function isTerminal(s: EscrowState): boolean {
  return s === "released" || s === "refunded" || s === "cancelled" || s === "expired";
}

export type EscrowEvent =
  | "start_payment"
  | "payment_completes"
  | "payment_partial"
  | "submit_proof"
  | "approve_proof_completes"
  | "approve_proof_partial"
  | "reject_proof"
  | "cancel"
  | "expire"
  | "mark_delivered"
  | "confirm_receipt"
  | "auto_release"
  | "open_dispute"
  | "resolve_release"
  | "resolve_refund"
  | "refund_voluntarily"
  | "payout_confirmed"
  | "refund_confirmed"
  | "payout_failed";

interface Row {
  rule: string;
  event: EscrowEvent;
  from: EscrowState[];
  /** null: the state stays. */
  to: EscrowState | null;
}

const TABLE: Row[] = [
  { rule: "ESC-2", event: "start_payment", from: ["awaiting_payment"], to: null },
  { rule: "ESC-3", event: "payment_completes", from: ["awaiting_payment"], to: "funded" },
  { rule: "ESC-4", event: "payment_partial", from: ["awaiting_payment"], to: null },
  { rule: "ESC-5", event: "submit_proof", from: ["awaiting_payment"], to: "payment_review" },
  { rule: "ESC-6", event: "approve_proof_completes", from: ["payment_review"], to: "funded" },
  { rule: "ESC-6", event: "approve_proof_partial", from: ["payment_review"], to: "awaiting_payment" },
  { rule: "ESC-7", event: "reject_proof", from: ["payment_review"], to: "awaiting_payment" },
  { rule: "ESC-8", event: "cancel", from: ["awaiting_payment"], to: "cancelled" },
  { rule: "ESC-9", event: "expire", from: ["awaiting_payment"], to: "expired" },
  { rule: "ESC-10", event: "mark_delivered", from: ["funded"], to: "delivered" },
  { rule: "ESC-11", event: "confirm_receipt", from: ["delivered"], to: "release_pending" },
  { rule: "ESC-12", event: "auto_release", from: ["delivered"], to: "release_pending" },
  { rule: "ESC-13", event: "open_dispute", from: ["funded", "delivered"], to: "disputed" },
  { rule: "ESC-14", event: "resolve_release", from: ["disputed"], to: "release_pending" },
  { rule: "ESC-14", event: "resolve_refund", from: ["disputed"], to: "refund_pending" },
  { rule: "ESC-15", event: "refund_voluntarily", from: ["funded", "delivered"], to: "refund_pending" },
  { rule: "ESC-16", event: "payout_confirmed", from: ["release_pending"], to: "released" },
  { rule: "ESC-17", event: "refund_confirmed", from: ["refund_pending"], to: "refunded" },
  { rule: "ESC-18", event: "payout_failed", from: ["release_pending", "refund_pending"], to: null },
];

/** The state after `event` in `state`, or null when the table has no such row (ESC-19). */
export function nextState(state: EscrowState, event: EscrowEvent): EscrowState | null {
  const row = TABLE.find((r) => r.event === event && r.from.includes(state));
  if (!row) return null;
  return row.to ?? state;
}
