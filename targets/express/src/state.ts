// The backend's whole state, in memory. Node runs one request's synchronous section at a time, so every method
// here that changes an escrow and writes its ledger entry does both before anything else can run (LED-8), and a
// webhook's deduplication key is inserted in the same synchronous section as its effect (WH-4, LED-6). Provider
// calls are made outside these sections (they are awaited by the routes).

import { Config } from "./config";
import { Op, Parties, Principal, Role, authorize, isStaff } from "./domain/authz";
import { EscrowEvent, EscrowState, WIRE_STATE, isTerminal, nextState } from "./domain/escrow";
import { Account, Entry, Ledger, Posting, Provider, credit, debit, postingAmount } from "./domain/ledger";
import { Refusal, invalid } from "./errors";
import { Money, formatMoney, isHighRisk, money, platformFee } from "./money";
import { PayoutJob } from "./providers";
import { SessionRecord, SessionStore, SignInName } from "./sessions";
import { ctEqual, hashPassword, rfc3339, systemNow, totp, uuid, JsonObject, Json } from "./util";
import { Notice, ParseError, dedupKeys, parseNotice } from "./webhooks/notice";
import { AuthError, Headers, Scheme, SecretRing, redact, standardWebhooksKey, verify } from "./webhooks/verify";
import { randomBytes } from "node:crypto";

/** Role names on the wire (this backend's dialect). */
export const WIRE_ROLE: Record<Role, string> = { user: "member", support: "agent", admin: "admin" };

export function parseWireRole(name: string): Role | null {
  for (const [role, wire] of Object.entries(WIRE_ROLE)) if (wire === name) return role as Role;
  return null;
}

export interface UserRec {
  id: number;
  publicId: string;
  email: string;
  salt: Buffer;
  pwHash: Buffer;
  totpSeed: Buffer | null;
  role: Role;
  deleted: boolean;
  createdAt: number;
}

export type ProofFlag = "reused_tx_hash" | "amount_mismatch" | "currency_mismatch" | "wrong_destination";

export interface Proof {
  txHash: string;
  amount: Money;
  destination: string;
}

export interface ProofRec extends Proof {
  publicId: string;
  flags: ProofFlag[];
  status: "pending_review" | "approval_pending" | "approved" | "rejected";
  submittedAt: number;
}

export interface PayoutRec {
  refund: boolean;
  amount: Money;
  key: string;
  attempts: number;
  status: "requested" | "failed" | "confirmed";
  requestedAt: number;
  lastError: string | null;
}

export interface EscrowRec {
  id: number;
  publicId: string;
  buyer: number;
  seller: number;
  amount: Money;
  provider: Provider;
  state: EscrowState;
  version: number;
  received: bigint;
  createdAt: number;
  deliveredAt: number | null;
  invoice: string | null;
  /** The proof under review, with its flags. */
  proof: { proof: Proof; flags: ProofFlag[] } | null;
  proofs: ProofRec[];
  instructions: JsonObject | null;
  payout: PayoutRec | null;
  description: string;
  updatedAt: number;
  fee: bigint | null;
}

export type Resolution = "release" | "refund";

export type PendingAction =
  | { kind: "resolve"; escrow: number; resolution: Resolution }
  | { kind: "approve_proof"; escrow: number }
  | { kind: "grant_admin"; user: number };

export interface ApprovalRec {
  publicId: string;
  action: PendingAction;
  params: JsonObject;
  target: string;
  requestedBy: number;
  requestedAt: number;
  status: "pending" | "executed" | "void";
}

export interface AuditRec {
  id: number;
  time: number;
  actor: number | null;
  session: string | null;
  action: Op;
  target: string;
  outcome: "allowed" | "refused" | "pending_approval";
  refusal: string | null;
  stepUpAt: number | null;
  approval: string | null;
  requestId: string;
}

/** A webhook endpoint: SHKeeper, Request Network, or a named Standard Webhooks provider. */
export interface Route {
  scheme: Scheme;
  name: string;
}

export function routeProvider(route: Route): Provider | null {
  if (route.scheme === "shkeeper") return "shkeeper";
  if (route.scheme === "request_network") return "request_network";
  return route.name === "shkeeper" || route.name === "request_network" || route.name === "manual_wallet" ? route.name : null;
}

export interface DeadLetterRec {
  publicId: string;
  route: Route;
  reason: string;
  detail: string;
  headers: [string, string][];
  body: Buffer;
  receivedAt: number;
  authentic: boolean;
  replayedAt: number | null;
}

export interface Caller {
  user: number;
  session: SessionRecord;
  role: Role;
  stepUpAt: number | null;
}

/** What the Socket.IO layer hears from the backend. */
export interface RealtimeSink {
  escrowUpdated(e: { dealId: string; status: string; version: number; buyer: string; seller: string }): void;
  sessionRevoked(sessionPublicId: string): void;
  roleChanged(userPublicId: string, role: Role): void;
}

const NO_SINK: RealtimeSink = { escrowUpdated() {}, sessionRevoked() {}, roleChanged() {} };

/** 10000-01-01T00:00:00Z: the test clock stays below it. */
export const LATEST_CLOCK = 253_402_300_800;

export function payoutKey(escrow: EscrowRec): string {
  // PRV-4: derived from the escrow alone, the same on every retry.
  return `payout-${escrow.publicId}`;
}

export function invoiceExternalId(escrow: EscrowRec): string {
  return `inv-${escrow.publicId}`;
}

export class Backend {
  sink: RealtimeSink = NO_SINK;
  clockOffset = 0;
  readonly users: UserRec[] = [];
  private readonly userByPublic = new Map<string, number>();
  private readonly userByEmail = new Map<string, number>();
  readonly sessions = new SessionStore();
  private readonly sessionByPublic = new Map<string, SessionRecord>();
  readonly escrows: EscrowRec[] = [];
  private readonly escrowByPublic = new Map<string, number>();
  readonly ledger = new Ledger();
  private readonly invoices = new Map<string, number>();
  private readonly usedTxHashes = new Set<string>();
  private readonly processed = new Set<string>();
  readonly approvals: ApprovalRec[] = [];
  private readonly approvalByPublic = new Map<string, number>();
  readonly audit: AuditRec[] = [];
  readonly deadLetters: DeadLetterRec[] = [];
  readonly rings = new Map<string, SecretRing>();
  /** Payouts a state change queued; the route sends them once the change is done. */
  outbox: PayoutJob[] = [];

  constructor(readonly cfg: Config) {
    this.rings.set("shkeeper", new SecretRing(cfg.shkeeperApiKey));
    this.rings.set("request_network", new SecretRing(cfg.requestNetworkWebhookSecret));
    for (const [name, secret] of cfg.standardWebhookSecrets) this.rings.set(`standard:${name}`, new SecretRing(secret));
  }

  now(): number {
    return systemNow() + this.clockOffset;
  }

  providerEnabled(p: Provider): boolean {
    return !this.cfg.disabledProviders.includes(p);
  }

  takeJobs(): PayoutJob[] {
    const jobs = this.outbox;
    this.outbox = [];
    return jobs;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Users and sessions

  createUser(email: string, password: string, role: Role, totpSeed: Buffer | null): UserRec {
    const key = email.toLowerCase();
    if (this.userByEmail.has(key)) throw invalid("an account with this email exists");
    const salt = randomBytes(16);
    const user: UserRec = {
      id: this.users.length,
      publicId: uuid(),
      email,
      salt,
      pwHash: hashPassword(salt, password),
      totpSeed,
      role,
      deleted: false,
      createdAt: this.now(),
    };
    this.users.push(user);
    this.userByPublic.set(user.publicId, user.id);
    this.userByEmail.set(key, user.id);
    return user;
  }

  userJson(id: number): JsonObject {
    const u = this.users[id]!;
    return { id: u.publicId, email: u.email, role: WIRE_ROLE[u.role], createdAt: rfc3339(u.createdAt) };
  }

  userByPublicId(publicId: string): UserRec | null {
    const id = this.userByPublic.get(publicId);
    return id === undefined ? null : this.users[id]!;
  }

  passwordOk(user: number, password: string): boolean {
    const u = this.users[user];
    return u !== undefined && ctEqual(hashPassword(u.salt, password), u.pwHash);
  }

  totpOk(user: number, code: string, now: number): boolean {
    const seed = this.users[user]?.totpSeed;
    if (!seed) return false;
    let ok = false;
    for (const d of [-30, 0, 30]) ok = ctEqual(totp(seed, now + d), code) || ok;
    return ok;
  }

  private revoked(s: SessionRecord): void {
    this.sink.sessionRevoked(s.publicId);
  }

  signIn(email: string, password: string, client: string, transport: "token" | "cookie", userAgent: string | null): { session: SessionRecord; access: string; refresh: string } {
    const now = this.now();
    const key = email.toLowerCase();
    const id = this.userByEmail.get(key);
    const user = id !== undefined && !this.users[id]!.deleted ? id : null;
    const name: SignInName = user !== null ? { account: user } : { unknown: key };
    const passwordOk = user !== null ? this.passwordOk(user, password) : (hashPassword(Buffer.alloc(16), password), false);
    const issued = this.sessions.signIn(name, passwordOk, client, now, transport, userAgent);
    this.sessionByPublic.set(issued.session.publicId, issued.session);
    return issued;
  }

  /** A session for a passkey sign-in (the assertion was verified). */
  openPasskeySession(user: number, client: string, transport: "token" | "cookie", userAgent: string | null): { session: SessionRecord; access: string; refresh: string } {
    const now = this.now();
    this.sessions.admitAttempt({ account: user }, client, now);
    const issued = this.sessions.open(user, now, transport, userAgent);
    this.sessionByPublic.set(issued.session.publicId, issued.session);
    return issued;
  }

  refresh(token: string): { session: SessionRecord; access: string; refresh: string } {
    return this.sessions.refresh(token, this.now(), (s) => this.revoked(s));
  }

  /** The caller behind an access token (SES-4, SES-6, SES-7: the role is the account's role now). */
  authenticateToken(token: string): Caller {
    const now = this.now();
    const s = this.sessions.authenticate(token, now);
    const user = this.users[s.user];
    if (!user || user.deleted) throw new Refusal("unauthenticated");
    return { user: s.user, session: s, role: user.role, stepUpAt: s.stepUpAt };
  }

  touch(caller: Caller): void {
    caller.session.lastUsedAt = this.now();
  }

  authorize(caller: Caller | null, op: Op, parties: Parties | null): void {
    const principal: Principal | null = caller ? { user: caller.user, role: caller.role, stepUpAt: caller.stepUpAt } : null;
    authorize(principal, op, parties, this.now());
  }

  logout(caller: Caller): void {
    if (this.sessions.revoke(caller.session, "logout", this.now())) this.revoked(caller.session);
  }

  listSessions(caller: Caller): Json[] {
    return this.sessions.sessionsOf(caller.user, this.now()).map((s) => ({
      id: s.publicId,
      createdAt: rfc3339(s.createdAt),
      lastUsedAt: rfc3339(s.lastUsedAt),
      current: s.id === caller.session.id,
      userAgent: s.userAgent,
      stepUpExpiresAt: s.stepUpAt === null ? null : rfc3339(s.stepUpAt + 300),
    }));
  }

  revokeOwn(caller: Caller, publicId: string): void {
    const s = this.sessionByPublic.get(publicId);
    if (!s || s.user !== caller.user) throw new Refusal("not_found");
    if (this.sessions.revoke(s, "user_revoked", this.now())) this.revoked(s);
  }

  stepUp(caller: Caller, password: string, code: string): JsonObject {
    const now = this.now();
    const ok = this.passwordOk(caller.user, password) && this.totpOk(caller.user, code, now);
    this.sessions.elevate(caller.session, ok, now);
    return { sessionId: caller.session.publicId, reauthenticatedAt: rfc3339(now), validUntil: rfc3339(now + 300) };
  }

  stepUpVerified(caller: Caller, assertedBy: number): JsonObject {
    const now = this.now();
    this.sessions.elevate(caller.session, assertedBy === caller.user, now);
    return { sessionId: caller.session.publicId, reauthenticatedAt: rfc3339(now), validUntil: rfc3339(now + 300) };
  }

  changePassword(caller: Caller, current: string, next: string): void {
    if (!this.passwordOk(caller.user, current)) throw new Refusal("invalid_credentials");
    if ([...next].length < 12) throw invalid("newPassword must have at least 12 characters");
    const u = this.users[caller.user]!;
    u.salt = randomBytes(16);
    u.pwHash = hashPassword(u.salt, next);
    // SES-7: the session that changed it stays, every other one goes.
    for (const s of this.sessions.revokeAllExcept(caller.user, caller.session.id, "password_changed", this.now())) this.revoked(s);
  }

  revokeAll(user: number): number {
    const revoked = this.sessions.revokeAllExcept(user, null, "admin_revoked", this.now());
    for (const s of revoked) this.revoked(s);
    return revoked.length;
  }

  setRole(user: number, role: Role): void {
    const u = this.users[user]!;
    if (u.role !== role) {
      u.role = role;
      this.sink.roleChanged(u.publicId, role);
    }
  }

  voidApprovalsOf(user: number): number {
    let n = 0;
    for (const a of this.approvals) {
      if (a.requestedBy === user && a.status === "pending") {
        a.status = "void";
        n += 1;
      }
    }
    return n;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Escrows ("deals" on the wire)

  escrowByPublicId(publicId: string): EscrowRec | null {
    const id = this.escrowByPublic.get(publicId);
    return id === undefined ? null : this.escrows[id]!;
  }

  parties(e: EscrowRec | null): Parties | null {
    return e ? { buyer: e.buyer, seller: e.seller } : null;
  }

  userPublic(id: number): string {
    return this.users[id]?.publicId ?? "";
  }

  escrowJson(e: EscrowRec): JsonObject {
    const c = e.amount.currency;
    const deadline = e.state === "awaiting_payment" && e.received === 0n ? rfc3339(e.createdAt + this.cfg.paymentDeadlineSeconds) : null;
    const autoRelease = e.state === "delivered" && e.deliveredAt !== null ? rfc3339(e.deliveredAt + this.cfg.autoReleaseSeconds) : null;
    return {
      id: e.publicId,
      buyerId: this.userPublic(e.buyer),
      sellerId: this.userPublic(e.seller),
      price: { amount: formatMoney(e.amount), currency: c },
      paymentMethod: e.provider,
      status: WIRE_STATE[e.state],
      version: e.version,
      amountReceived: formatMoney(money(e.received, c)),
      description: e.description,
      highRisk: isHighRisk(e.amount, this.cfg.highRiskThresholdMajor),
      fee: e.fee === null ? null : formatMoney(money(e.fee, c)),
      paymentDueBy: deadline,
      autoReleaseAt: autoRelease,
      createdAt: rfc3339(e.createdAt),
      updatedAt: rfc3339(e.updatedAt),
    };
  }

  createEscrow(buyer: number, sellerPublic: string, amount: Money, provider: Provider, description: string): EscrowRec {
    const seller = this.userByPublic.get(sellerPublic);
    if (seller === undefined || this.users[seller]!.deleted || seller === buyer) {
      throw invalid("sellerId must name another existing account");
    }
    if (amount.minor <= 0n) throw invalid("price.amount must be positive");
    if (!this.providerEnabled(provider)) throw new Refusal("provider_disabled");
    const now = this.now();
    const e: EscrowRec = {
      id: this.escrows.length,
      publicId: uuid(),
      buyer,
      seller,
      amount,
      provider,
      state: "awaiting_payment",
      version: 1,
      received: 0n,
      createdAt: now,
      deliveredAt: null,
      invoice: null,
      proof: null,
      proofs: [],
      instructions: null,
      payout: null,
      description,
      updatedAt: now,
      fee: null,
    };
    this.escrows.push(e);
    this.escrowByPublic.set(e.publicId, e.id);
    this.announce(e);
    return e;
  }

  private announce(e: EscrowRec): void {
    this.sink.escrowUpdated({
      dealId: e.publicId,
      status: WIRE_STATE[e.state],
      version: e.version,
      buyer: this.userPublic(e.buyer),
      seller: this.userPublic(e.seller),
    });
  }

  /** ESC-21: every change of state bumps the version and is announced (RT-4). */
  private setState(e: EscrowRec, to: EscrowState): void {
    if (e.state !== to) {
      e.state = to;
      e.version += 1;
      e.updatedAt = this.now();
      this.announce(e);
    }
  }

  /** Moves along the table or refuses (ESC-19). */
  changeState(e: EscrowRec, event: EscrowEvent): void {
    const to = nextState(e.state, event);
    if (to === null) throw new Refusal("invalid_transition");
    this.setState(e, to);
  }

  requireTransition(e: EscrowRec, event: EscrowEvent): void {
    if (nextState(e.state, event) === null) throw new Refusal("invalid_transition");
  }

  /** An escrow for an operation: authorization first (ESC-20, AZ-2), then the expected version (ESC-21). */
  escrowFor(caller: Caller, op: Op, publicId: string, expectedVersion: number | null): EscrowRec {
    const e = this.escrowByPublicId(publicId);
    this.authorize(caller, op, this.parties(e));
    if (!e) throw new Refusal("not_found");
    if (expectedVersion !== null && e.version !== expectedVersion) throw new Refusal("version_mismatch");
    return e;
  }

  private accountName(a: Account): string {
    const escrow = (id: number): string => this.escrows[id]?.publicId ?? "";
    switch (a.kind) {
      case "provider":
        return `provider:${a.provider}`;
      case "escrow":
      case "payout":
      case "refund":
        return `${a.kind}:${escrow(a.escrow)}`;
      case "buyer_credit":
        return `buyer_credit:${this.userPublic(a.user)}`;
      case "suspense":
        return "suspense";
      case "fees":
        return "fees";
    }
  }

  /** Release of the whole amount with the platform fee (SPEC §0, LED-5): entry, state and payout together. */
  private writeRelease(e: EscrowRec, cause: string): void {
    const fee = platformFee(e.amount.minor, this.cfg.feeBps);
    const payout = money(e.amount.minor - fee, e.amount.currency);
    this.ledger.append(`action:${cause}`, e.id, this.now(), "release", null, [
      debit({ kind: "escrow", escrow: e.id }, e.amount),
      credit({ kind: "payout", escrow: e.id }, payout),
      credit({ kind: "fees" }, money(fee, e.amount.currency)),
    ]);
    e.fee = fee;
    this.setState(e, "release_pending");
    this.requestPayout(e, payout, false, `seller:${this.userPublic(e.seller)}`);
  }

  /** Refund of what is held; no fee. */
  private writeRefund(e: EscrowRec, cause: string): void {
    const held = money(e.received, e.amount.currency);
    this.ledger.append(`action:${cause}`, e.id, this.now(), "refund", null, [
      debit({ kind: "escrow", escrow: e.id }, held),
      credit({ kind: "refund", escrow: e.id }, held),
    ]);
    this.setState(e, "refund_pending");
    this.requestPayout(e, held, true, `buyer:${this.userPublic(e.buyer)}`);
  }

  private requestPayout(e: EscrowRec, amount: Money, refund: boolean, destination: string): void {
    const key = payoutKey(e);
    e.payout = { refund, amount, key, attempts: 1, status: "requested", requestedAt: this.now(), lastError: null };
    this.outbox.push({ escrow: e.id, provider: e.provider, key, amount, destination });
  }

  release(e: EscrowRec, event: EscrowEvent, cause: string): void {
    this.requireTransition(e, event);
    this.writeRelease(e, cause);
  }

  refund(e: EscrowRec, event: EscrowEvent, cause: string): void {
    this.requireTransition(e, event);
    this.writeRefund(e, cause);
  }

  requestCause(): string {
    return `request-${uuid()}`;
  }

  /** ESC-9 and ESC-12: fired before every request is decided and once a second. */
  fireDeadlines(): void {
    const now = this.now();
    for (const e of this.escrows) {
      if (e.state === "awaiting_payment" && e.received === 0n && now - e.createdAt >= this.cfg.paymentDeadlineSeconds) {
        this.changeState(e, "expire");
      } else if (e.state === "delivered" && e.deliveredAt !== null && now - e.deliveredAt >= this.cfg.autoReleaseSeconds) {
        this.release(e, "auto_release", `auto-release-${e.publicId}`);
      }
    }
  }

  /** SPEC §2's allocation of a payment; returns whether it went to suspense (LED-10). */
  bookPayment(provider: Provider, e: EscrowRec, paid: Money, cause: string, invoice: string | null): boolean {
    const open = !isTerminal(e.state);
    let toEscrow = 0n;
    let toCredit = 0n;
    let toSuspense = 0n;
    if (!open || paid.currency !== e.amount.currency) {
      toSuspense = paid.minor;
    } else {
      const due = e.amount.minor - e.received > 0n ? e.amount.minor - e.received : 0n;
      toEscrow = paid.minor < due ? paid.minor : due;
      toCredit = paid.minor - toEscrow;
    }
    const postings: Posting[] = [debit({ kind: "provider", provider }, paid)];
    if (toEscrow > 0n) postings.push(credit({ kind: "escrow", escrow: e.id }, money(toEscrow, paid.currency)));
    if (toCredit > 0n) postings.push(credit({ kind: "buyer_credit", user: e.buyer }, money(toCredit, paid.currency)));
    if (toSuspense > 0n) postings.push(credit({ kind: "suspense" }, money(toSuspense, paid.currency)));
    // Suspense money belongs to no escrow: a closed escrow never gets another entry (ESC-22).
    this.ledger.append(cause, toSuspense > 0n ? null : e.id, this.now(), toSuspense > 0n ? "suspense" : "payment", invoice, postings);
    e.received += toEscrow;
    e.updatedAt = this.now();
    return toSuspense > 0n;
  }

  startPaymentCheck(caller: Caller, publicId: string, expectedVersion: number | null): EscrowRec {
    const e = this.escrowFor(caller, "start_payment", publicId, expectedVersion);
    this.requireTransition(e, "start_payment");
    if (!this.providerEnabled(e.provider)) throw new Refusal("provider_disabled");
    return e;
  }

  bindInvoice(e: EscrowRec, binding: string, instructions: JsonObject): void {
    if (e.instructions === null && e.provider !== "manual_wallet") {
      e.invoice = binding;
      e.instructions = instructions;
      this.invoices.set(binding, e.id);
    }
  }

  submitProof(e: EscrowRec, proof: Proof): ProofRec {
    if (e.provider !== "manual_wallet") throw new Refusal("invalid_transition");
    this.requireTransition(e, "submit_proof");
    if (proof.amount.minor <= 0n) throw invalid("amount must be positive");
    const due = money(e.amount.minor - e.received, e.amount.currency);
    const flags: ProofFlag[] = [];
    if (this.usedTxHashes.has(proof.txHash)) flags.push("reused_tx_hash");
    if (proof.amount.currency !== due.currency) flags.push("currency_mismatch");
    else if (proof.amount.minor !== due.minor) flags.push("amount_mismatch");
    if (proof.destination !== this.cfg.platformAddress) flags.push("wrong_destination");
    this.usedTxHashes.add(proof.txHash);
    this.changeState(e, "submit_proof");
    e.proof = { proof, flags };
    const rec: ProofRec = { ...proof, publicId: uuid(), flags, status: "pending_review", submittedAt: this.now() };
    e.proofs.push(rec);
    return rec;
  }

  proofJson(e: EscrowRec, p: ProofRec): JsonObject {
    return {
      id: p.publicId,
      dealId: e.publicId,
      txHash: p.txHash,
      amount: { amount: formatMoney(p.amount), currency: p.amount.currency },
      toAddress: p.destination,
      flagged: p.flags.length > 0,
      flags: p.flags,
      status: p.status,
      submittedAt: rfc3339(p.submittedAt),
    };
  }

  currentProof(e: EscrowRec, publicId: string): ProofRec | null {
    const last = e.proofs[e.proofs.length - 1];
    return e.proof !== null && last !== undefined && last.publicId === publicId ? last : null;
  }

  private setProofStatus(e: EscrowRec, status: ProofRec["status"]): void {
    for (let i = e.proofs.length - 1; i >= 0; i--) {
      const p = e.proofs[i]!;
      if (p.status === "pending_review" || p.status === "approval_pending") {
        p.status = status;
        return;
      }
    }
  }

  approveProof(e: EscrowRec): void {
    const current = e.proof;
    if (!current) throw new Refusal("invalid_transition");
    this.requireTransition(e, "approve_proof_partial");
    this.bookPayment("manual_wallet", e, current.proof.amount, `action:approve-proof:${e.publicId}:${current.proof.txHash}`, null);
    e.proof = null;
    this.setProofStatus(e, "approved");
    this.changeState(e, e.received >= e.amount.minor ? "approve_proof_completes" : "approve_proof_partial");
  }

  rejectProof(e: EscrowRec): void {
    this.changeState(e, "reject_proof");
    e.proof = null;
    this.setProofStatus(e, "rejected");
  }

  highRisk(e: EscrowRec): boolean {
    return isHighRisk(e.amount, this.cfg.highRiskThresholdMajor);
  }

  proofFlagged(e: EscrowRec): boolean {
    return e.proof !== null && e.proof.flags.length > 0;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Two-person approvals (AZ-7) and the audit log (AZ-9)

  requestApproval(requester: number, action: PendingAction, target: string, params: JsonObject): ApprovalRec {
    const a: ApprovalRec = { publicId: uuid(), action, params, target, requestedBy: requester, requestedAt: this.now(), status: "pending" };
    this.approvalByPublic.set(a.publicId, this.approvals.length);
    this.approvals.push(a);
    if (action.kind === "approve_proof") this.setProofStatus(this.escrows[action.escrow]!, "approval_pending");
    return a;
  }

  approvalJson(a: ApprovalRec): JsonObject {
    const action = a.action.kind === "resolve" ? "RESOLVE_DISPUTE" : a.action.kind === "approve_proof" ? "APPROVE_PAYMENT" : "GRANT_ADMIN";
    return {
      id: a.publicId,
      action,
      targetId: a.target,
      parameters: a.params,
      requestedBy: this.userPublic(a.requestedBy),
      requestedAt: rfc3339(a.requestedAt),
      status: a.status.toUpperCase(),
    };
  }

  /** The second admin's approval executes the action. */
  approvePending(approver: number, publicId: string): JsonObject {
    const index = this.approvalByPublic.get(publicId);
    if (index === undefined) throw new Refusal("not_found");
    const a = this.approvals[index]!;
    if (a.status !== "pending") throw new Refusal("invalid_transition");
    if (a.requestedBy === approver) throw new Refusal("same_approver");
    const cause = `approval-${publicId}`;
    const action = a.action;
    let escrow: EscrowRec | null = null;
    try {
      switch (action.kind) {
        case "resolve":
          escrow = this.escrows[action.escrow]!;
          if (action.resolution === "release") this.release(escrow, "resolve_release", cause);
          else this.refund(escrow, "resolve_refund", cause);
          break;
        case "approve_proof":
          escrow = this.escrows[action.escrow]!;
          this.approveProof(escrow);
          break;
        case "grant_admin":
          this.setRole(action.user, "admin");
          break;
      }
    } catch (e) {
      a.status = "void";
      throw e;
    }
    a.status = "executed";
    const body: JsonObject = { approval: this.approvalJson(a) };
    if (escrow) body["deal"] = this.escrowJson(escrow);
    if (action.kind === "grant_admin") body["user"] = this.userJson(action.user);
    return body;
  }

  recordAudit(caller: Caller | null, action: Op, target: string, outcome: { status: number } | Refusal, approval: string | null): void {
    const refused = outcome instanceof Refusal;
    this.audit.push({
      id: this.audit.length + 1,
      time: this.now(),
      actor: caller ? caller.user : null,
      session: caller ? caller.session.publicId : null,
      action,
      target,
      outcome: refused ? "refused" : outcome.status === 202 ? "pending_approval" : "allowed",
      refusal: refused ? outcome.code : null,
      stepUpAt: caller ? caller.stepUpAt : null,
      approval,
      requestId: uuid(),
    });
  }

  auditJson(r: AuditRec): JsonObject {
    return {
      id: String(r.id),
      at: rfc3339(r.time),
      actorId: r.actor === null ? null : this.userPublic(r.actor),
      sessionId: r.session,
      action: r.action,
      target: r.target,
      outcome: r.outcome,
      refusal: r.refusal,
      reauthenticatedAt: r.stepUpAt === null ? null : rfc3339(r.stepUpAt),
      approvalId: r.approval,
      requestId: r.requestId,
    };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Payouts

  payoutJson(e: EscrowRec): Json {
    const p = e.payout;
    if (!p) return null;
    return {
      dealId: e.publicId,
      kind: p.refund ? "REFUND" : "RELEASE",
      amount: formatMoney(p.amount),
      currency: p.amount.currency,
      method: e.provider,
      idempotencyKey: p.key,
      attempts: p.attempts,
      status: p.status.toUpperCase(),
      requestedAt: rfc3339(p.requestedAt),
      lastError: p.lastError,
    };
  }

  /** ESC-18, PRV-4: a retry with the same idempotency key. */
  retryPayout(e: EscrowRec): PayoutJob {
    this.requireTransition(e, "payout_failed");
    const p = e.payout;
    if (!p) throw new Refusal("invalid_transition");
    p.attempts += 1;
    const destination = p.refund ? `buyer:${this.userPublic(e.buyer)}` : `seller:${this.userPublic(e.seller)}`;
    return { escrow: e.id, provider: e.provider, key: p.key, amount: p.amount, destination };
  }

  payoutResult(escrow: number, error: string | null): void {
    const p = this.escrows[escrow]?.payout;
    if (!p || p.status === "confirmed") return;
    p.status = error === null ? "requested" : "failed";
    p.lastError = error;
  }

  stuck(olderThan: number): Json[] {
    const now = this.now();
    return this.escrows
      .filter((e) => (e.state === "release_pending" || e.state === "refund_pending") && e.payout !== null && now - e.payout.requestedAt >= olderThan)
      .map((e) => this.payoutJson(e));
  }

  // ------------------------------------------------------------------------------------------------------------
  // Ledger

  /** A ledger entry on the wire. Field names are those conform's ledger reader expects (see NOTES.md). */
  entryJson(entry: Entry): JsonObject {
    return {
      id: `entry-${entry.seq}`,
      cause: entry.cause,
      escrow_id: entry.escrow === null ? null : this.escrows[entry.escrow]!.publicId,
      kind: entry.kind,
      time: rfc3339(entry.time),
      invoice: entry.invoice,
      postings: entry.postings.map((p) => ({ account: this.accountName(p.account), currency: p.currency, amount: postingAmount(p) })),
    };
  }

  // ------------------------------------------------------------------------------------------------------------
  // Webhooks (WH)

  ring(route: Route): SecretRing | undefined {
    return this.rings.get(route.scheme === "standard_webhooks" ? `standard:${route.name}` : route.name);
  }

  /** WH-5: every failed delivery is kept, secrets redacted. */
  deadLetter(route: Route, reason: string, detail: string, headers: [string, string][], body: Buffer, authentic: boolean): DeadLetterRec {
    const d: DeadLetterRec = {
      publicId: uuid(),
      route,
      reason,
      detail,
      headers: redact(headers),
      body,
      receivedAt: this.now(),
      authentic,
      replayedAt: null,
    };
    this.deadLetters.push(d);
    return d;
  }

  deadLetterJson(d: DeadLetterRec): JsonObject {
    return {
      id: d.publicId,
      source: d.route.name,
      receivedAt: rfc3339(d.receivedAt),
      reason: d.reason,
      detail: d.detail,
      headers: Object.fromEntries(d.headers),
      rawBody: d.body.toString("base64"),
      replayedAt: d.replayedAt === null ? null : rfc3339(d.replayedAt),
    };
  }

  /**
   * Verifies and parses a delivery. Throws the refusal to answer (the delivery was dead-lettered), or returns the
   * notice. A disabled provider's delivery is refused with provider_disabled whatever its signature (PRV-3).
   */
  webhookCheck(route: Route, headers: [string, string][], body: Buffer): Notice {
    const now = this.now();
    const ring = this.ring(route);
    if (!ring) throw new Refusal("not_found");
    const h = new Headers(headers);
    let authError: AuthError | null = null;
    try {
      verify(route.scheme, h, body, ring, now);
    } catch (e) {
      if (!(e instanceof AuthError)) throw e;
      authError = e;
    }
    let notice: Notice | null = null;
    let parseError: ParseError | null = null;
    if (authError === null) {
      try {
        notice = parseNotice(route.scheme, h, body);
      } catch (e) {
        if (!(e instanceof ParseError)) throw e;
        parseError = e;
      }
    }
    const provider = routeProvider(route);
    if (provider !== null && !this.providerEnabled(provider)) {
      this.deadLetter(route, "provider_disabled", "provider_disabled", headers, body, notice !== null);
      throw new Refusal("provider_disabled");
    }
    if (authError !== null) {
      this.deadLetter(route, authError.stale ? "stale_timestamp" : "invalid_signature", `authentication_failed: ${authError.message}`, headers, body, false);
      throw new Refusal("invalid_signature", authError.message);
    }
    if (parseError !== null || notice === null) {
      const message = parseError?.message ?? "unparsable";
      this.deadLetter(route, "malformed", `malformed: ${message}`, headers, body, true);
      throw new Refusal("malformed", message);
    }
    return notice;
  }

  seen(keys: string[]): boolean {
    return keys.some((k) => this.processed.has(k));
  }

  private escrowOfPayoutKey(key: string): EscrowRec | null {
    if (!key.startsWith("payout-")) return null;
    return this.escrowByPublicId(key.slice("payout-".length));
  }

  /** Applies an authenticated, unseen notice. Returns null, or the reason to dead-letter it with. */
  applyNotice(route: Route, notice: Notice): { reason: string } | null {
    const now = this.now();
    const boundId = this.invoices.get(notice.invoice);
    const bound = boundId === undefined ? null : this.escrows[boundId]!;
    const provider = routeProvider(route);
    switch (notice.kind) {
      case "payment_pending":
      case "payment_failed":
        return null;
      case "payment_received": {
        const cause = (p: Provider): string => `${p}:${notice.eventKey}`;
        if (!bound) {
          if (notice.amount !== null && provider !== null) {
            this.ledger.append(cause(provider), null, now, "suspense", notice.invoice, [
              debit({ kind: "provider", provider }, notice.amount),
              credit({ kind: "suspense" }, notice.amount),
            ]);
          }
          return { reason: "unknown_invoice" };
        }
        const wasTerminal = isTerminal(bound.state);
        const p = provider ?? bound.provider;
        if (notice.amount === null) return { reason: "currency_mismatch" };
        const toSuspense = this.bookPayment(p, bound, notice.amount, cause(p), notice.invoice);
        if (toSuspense) return { reason: wasTerminal ? "processing_error" : "currency_mismatch" };
        if (bound.state === "awaiting_payment") {
          this.changeState(bound, bound.received >= bound.amount.minor ? "payment_completes" : "payment_partial");
        }
        return null;
      }
      case "payout_confirmed":
      case "refund_confirmed":
      case "payout_failed": {
        const e = this.escrowOfPayoutKey(notice.invoice) ?? bound;
        if (!e || !e.payout) return { reason: "processing_error" };
        const payout = e.payout;
        if (notice.kind === "payout_failed") {
          if (nextState(e.state, "payout_failed") === null) return { reason: "processing_error" };
          payout.status = "failed";
          payout.lastError = "the provider reported the payout failed";
          return null;
        }
        if (notice.kind === "refund_confirmed" && !payout.refund) return { reason: "processing_error" };
        const event: EscrowEvent = payout.refund ? "refund_confirmed" : "payout_confirmed";
        if (nextState(e.state, event) === null) return { reason: "processing_error" };
        const account: Account = payout.refund ? { kind: "refund", escrow: e.id } : { kind: "payout", escrow: e.id };
        this.ledger.append(`${provider ?? e.provider}:${notice.eventKey}`, e.id, now, payout.refund ? "refund_confirmed" : "payout_confirmed", null, [
          debit(account, payout.amount),
          credit({ kind: "provider", provider: e.provider }, payout.amount),
        ]);
        this.changeState(e, event);
        payout.status = "confirmed";
        payout.lastError = null;
        return null;
      }
    }
  }

  /** Inserts the dedup keys and applies, in one synchronous section (WH-4). */
  webhookApply(route: Route, notice: Notice, headers: [string, string][], body: Buffer): "accepted" | "dead_lettered" {
    for (const k of dedupKeys(notice)) this.processed.add(k);
    const failed = this.applyNotice(route, notice);
    if (failed === null) return "accepted";
    this.deadLetter(route, failed.reason, failed.reason, headers, body, true);
    return "dead_lettered";
  }

  /** WH-6: a replay goes through deduplication, so its effect happens at most once. */
  replay(publicId: string): JsonObject {
    const d = this.deadLetters.find((x) => x.publicId === publicId);
    if (!d) throw new Refusal("not_found");
    const provider = routeProvider(d.route);
    if (provider !== null && !this.providerEnabled(provider)) throw new Refusal("provider_disabled");
    if (!d.authentic) throw new Refusal("invalid_signature", "the dead letter did not authenticate");
    let outcome: "APPLIED" | "DUPLICATE" | "FAILED";
    let notice: Notice | null = null;
    try {
      notice = parseNotice(d.route.scheme, new Headers(d.headers), d.body);
    } catch {
      notice = null;
    }
    if (notice === null) {
      outcome = "FAILED";
    } else {
      const keys = dedupKeys(notice);
      if (this.seen(keys)) {
        outcome = "DUPLICATE";
      } else {
        for (const k of keys) this.processed.add(k);
        // A replay that fails again stays the one dead letter it already is.
        outcome = this.applyNotice(d.route, notice) === null ? "APPLIED" : "FAILED";
      }
    }
    d.replayedAt = this.now();
    return { deadLetter: this.deadLetterJson(d), outcome };
  }

  /** The endpoint a rotation names. */
  routeNamed(name: string): Route | null {
    if (name === "shkeeper") return { scheme: "shkeeper", name };
    if (name === "request_network") return { scheme: "request_network", name };
    const route: Route = { scheme: "standard_webhooks", name };
    if (this.ring(route) || name === "manual_wallet") return route;
    return null;
  }

  /** WH-8: the new secret works at once; the old one for the overlap only. */
  rotate(route: Route, secret: string | null, overlap: number): JsonObject {
    let generated: string | null = null;
    if (secret === null) {
      const raw = randomBytes(24);
      generated = route.scheme === "standard_webhooks" ? `whsec_${raw.toString("base64")}` : raw.toString("hex");
    } else if (route.scheme === "standard_webhooks" && this.ring(route) && standardWebhooksKey(secret) === null) {
      throw invalid("a Standard Webhooks secret is whsec_ plus base64");
    }
    const next = secret ?? generated!;
    const now = this.now();
    const ring = this.ring(route);
    if (ring) ring.rotate(next, now, overlap);
    else this.rings.set(`standard:${route.name}`, new SecretRing(next));
    const body: JsonObject = { source: route.name, rotatedAt: rfc3339(now), previousValidUntil: rfc3339(now + overlap) };
    if (generated !== null) body["secret"] = generated;
    return body;
  }

  // ------------------------------------------------------------------------------------------------------------
  // Realtime

  /** Who a socket's token belongs to (RT-1): null when missing, expired, revoked or the account is gone. */
  socketIdentity(token: string): { user: string; session: string; role: Role } | null {
    try {
      const c = this.authenticateToken(token);
      return { user: this.userPublic(c.user), session: c.session.publicId, role: c.role };
    } catch {
      return null;
    }
  }

  currentRole(userPublic: string): Role | null {
    const u = this.userByPublicId(userPublic);
    return u && !u.deleted ? u.role : null;
  }

  /** RT-3: the same decision as REST: participants and staff. */
  maySubscribe(userPublic: string, role: Role, dealId: string): boolean {
    const u = this.userByPublicId(userPublic);
    if (!u || u.deleted) return false;
    const e = this.escrowByPublicId(dealId);
    if (!e) return false;
    return isStaff(role) || e.buyer === u.id || e.seller === u.id;
  }
}
