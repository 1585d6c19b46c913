// REST authorization (SPEC §3): who may call what, decided before state (ESC-20).

import { Refusal } from "../errors";

export type Role = "user" | "support" | "admin";
export const ROLES: readonly Role[] = ["user", "support", "admin"];

export function isStaff(r: Role): boolean {
  return r === "support" || r === "admin";
}

export const STEP_UP_WINDOW_SECONDS = 300;

type OpClass = "public" | "read" | "write" | "admin_step_up" | "staff_read";

/** The abstract operations and their class; `escrow` marks those that name one escrow (AZ-2 hiding). */
const OPS = {
  sign_in: ["public", false],
  refresh: ["public", false],
  logout: ["write", false],
  list_sessions: ["read", false],
  revoke_own_session: ["write", false],
  step_up: ["write", false],
  change_password: ["write", false],
  passkey_register_options: ["write", false],
  passkey_register: ["write", false],
  passkey_sign_in_options: ["public", false],
  passkey_sign_in: ["public", false],
  create_escrow: ["write", false],
  get_escrow: ["read", true],
  list_escrows: ["read", false],
  update_escrow: ["write", true],
  start_payment: ["write", true],
  submit_payment_proof: ["write", true],
  cancel_escrow: ["write", true],
  mark_delivered: ["write", true],
  confirm_receipt: ["write", true],
  open_dispute: ["write", true],
  refund_voluntarily: ["write", true],
  resolve_dispute: ["admin_step_up", true],
  approve_proof: ["admin_step_up", true],
  reject_proof: ["admin_step_up", true],
  approve_pending: ["admin_step_up", false],
  retry_payout: ["admin_step_up", true],
  replay_dead_letter: ["admin_step_up", false],
  rotate_webhook_secret: ["admin_step_up", false],
  change_role: ["admin_step_up", false],
  delete_account: ["admin_step_up", false],
  revoke_user_sessions: ["admin_step_up", false],
  list_stuck_payouts: ["staff_read", false],
  list_dead_letters: ["staff_read", false],
  read_audit_log: ["staff_read", false],
  read_ledger: ["staff_read", false],
  deliver_webhook: ["public", false],
  subscribe_escrow: ["read", true],
} as const satisfies Record<string, readonly [OpClass, boolean]>;

export type Op = keyof typeof OPS;

export interface Principal {
  user: number;
  role: Role;
  stepUpAt: number | null;
}

export interface Parties {
  buyer: number;
  seller: number;
}

function reservedTo(op: Op): "buyer" | "seller" | "either" {
  switch (op) {
    case "start_payment":
    case "submit_payment_proof":
    case "confirm_receipt":
      return "buyer";
    case "mark_delivered":
    case "refund_voluntarily":
      return "seller";
    default:
      return "either";
  }
}

export function stepUpValid(stepUpAt: number | null, now: number): boolean {
  if (stepUpAt === null) return false;
  const age = now - stepUpAt;
  return age >= 0 && age < STEP_UP_WINDOW_SECONDS;
}

function adminStepUp(role: Role, stepUpAt: number | null, now: number): void {
  if (role !== "admin") throw new Refusal("forbidden");
  if (!stepUpValid(stepUpAt, now)) throw new Refusal("step_up_required");
}

/**
 * Throws the refusal the caller gets, or returns: AZ-1 (anonymous), AZ-2 (strangers get not_found), AZ-3 (the other
 * participant), AZ-5 (support is read-only), AZ-6 (admin step-up).
 */
export function authorize(principal: Principal | null, op: Op, escrow: Parties | null, now: number): void {
  const [cls, targetsEscrow] = OPS[op];
  if (cls === "public") return;
  if (principal === null) throw new Refusal("unauthenticated");
  const { user, role, stepUpAt } = principal;
  if (targetsEscrow) {
    if (escrow === null) throw new Refusal("not_found");
    const isBuyer = escrow.buyer === user;
    const isSeller = escrow.seller === user;
    if (!isBuyer && !isSeller && !isStaff(role)) throw new Refusal("not_found");
    switch (cls) {
      case "read":
        return;
      case "admin_step_up":
        return adminStepUp(role, stepUpAt, now);
      case "write": {
        if (!isBuyer && !isSeller) throw new Refusal("forbidden");
        const reserved = reservedTo(op);
        if (reserved === "either" || (reserved === "buyer" && isBuyer) || (reserved === "seller" && isSeller)) return;
        throw new Refusal("forbidden");
      }
      default:
        throw new Refusal("forbidden");
    }
  }
  switch (cls) {
    case "read":
      return;
    case "write":
      if (role === "support" && op === "create_escrow") throw new Refusal("forbidden");
      return;
    case "staff_read":
      if (role === "admin") return;
      if (role === "support" && op !== "read_audit_log") return;
      throw new Refusal("forbidden");
    case "admin_step_up":
      return adminStepUp(role, stepUpAt, now);
  }
}
