// Admin and staff routes. Every admin call, allowed or refused, is audited (AZ-9); fund-moving and account
// operations need a re-authentication younger than 5 minutes in the same session (AZ-6); high-risk deals, flagged
// proofs and granting admin need a second admin (AZ-7, 202 with the pending approval).

import { Router, Request } from "express";
import { Op } from "../domain/authz";
import { Refusal, invalid } from "../errors";
import { Caller, Resolution, parseWireRole } from "../state";
import { Json, JsonObject } from "../util";
import { authenticate } from "./auth";
import { Ctx, Reply, sendJobs, wrap } from "./handler";
import { allow, expectedVersion, json, object, optStr, page, paged, query, reqStr, text } from "./request";

export function adminRouter(ctx: Ctx): Router {
  const r = Router();
  const b = ctx.backend;
  const param = (req: Request, name: string): string => String(req.params[name]);

  /** Authenticates, runs and audits an admin call whatever its outcome. */
  const audited = async (
    req: Request,
    op: Op,
    target: string,
    run: (caller: Caller) => Promise<{ reply: Reply; approval: string | null }> | { reply: Reply; approval: string | null },
  ): Promise<Reply> => {
    let caller: Caller | null = null;
    try {
      caller = authenticate(ctx, req);
      const { reply, approval } = await run(caller);
      b.recordAudit(caller, op, target, { status: reply.status }, approval);
      return reply;
    } catch (e) {
      if (e instanceof Refusal) b.recordAudit(caller, op, target, e, null);
      throw e;
    }
  };

  const staffRead = (req: Request, op: Op): Caller => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, op, null);
    return caller;
  };

  r.post("/admin/deals/:dealId/resolution", wrap(ctx, (req) => {
    const id = param(req, "dealId");
    return audited(req, "resolve_dispute", `deal:${id}`, (caller) => {
      const o = json(req);
      const e = b.escrowFor(caller, "resolve_dispute", id, expectedVersion(o));
      allow(o, ["decision", "comment", "expectedVersion"], ["decision"]);
      text(o, "comment", 2000);
      const decision = reqStr(o, "decision").toLowerCase();
      if (decision !== "release" && decision !== "refund") throw invalid("decision must be release or refund");
      const resolution: Resolution = decision;
      const event = resolution === "release" ? "resolve_release" : "resolve_refund";
      b.requireTransition(e, event);
      if (b.highRisk(e)) {
        const a = b.requestApproval(caller.user, { kind: "resolve", escrow: e.id, resolution }, id, { decision });
        return { reply: { status: 202, body: { data: b.approvalJson(a) } }, approval: a.publicId };
      }
      if (resolution === "release") b.release(e, event, b.requestCause());
      else b.refund(e, event, b.requestCause());
      return { reply: { status: 200, body: { data: b.escrowJson(e) } }, approval: null };
    });
  }));

  r.post("/admin/deals/:dealId/payment-proofs/:proofId/approve", wrap(ctx, (req) => {
    const id = param(req, "dealId");
    const proofId = param(req, "proofId");
    return audited(req, "approve_proof", `deal:${id}`, (caller) => {
      const o = json(req);
      const e = b.escrowFor(caller, "approve_proof", id, expectedVersion(o));
      allow(o, ["expectedVersion"]);
      b.requireTransition(e, "approve_proof_partial");
      if (!b.currentProof(e, proofId)) throw new Refusal("not_found");
      if (b.proofFlagged(e) || b.highRisk(e)) {
        const a = b.requestApproval(caller.user, { kind: "approve_proof", escrow: e.id }, id, { proofId });
        return { reply: { status: 202, body: { data: b.approvalJson(a) } }, approval: a.publicId };
      }
      b.approveProof(e);
      return { reply: { status: 200, body: { data: b.escrowJson(e) } }, approval: null };
    });
  }));

  r.post("/admin/deals/:dealId/payment-proofs/:proofId/reject", wrap(ctx, (req) => {
    const id = param(req, "dealId");
    const proofId = param(req, "proofId");
    return audited(req, "reject_proof", `deal:${id}`, (caller) => {
      const o = json(req);
      const e = b.escrowFor(caller, "reject_proof", id, expectedVersion(o));
      b.requireTransition(e, "reject_proof");
      if (!b.currentProof(e, proofId)) throw new Refusal("not_found");
      allow(o, ["comment", "expectedVersion"]);
      text(o, "comment", 2000);
      b.rejectProof(e);
      return { reply: { status: 200, body: { data: b.escrowJson(e) } }, approval: null };
    });
  }));

  r.post("/admin/approvals/:approvalId/confirm", wrap(ctx, (req) => {
    const id = param(req, "approvalId");
    return audited(req, "approve_pending", `approval:${id}`, (caller) => {
      b.authorize(caller, "approve_pending", null);
      object(req, []);
      return { reply: { status: 200, body: { data: b.approvePending(caller.user, id) } }, approval: id };
    });
  }));

  r.post("/admin/deals/:dealId/payout/retry", wrap(ctx, (req) => {
    const id = param(req, "dealId");
    return audited(req, "retry_payout", `deal:${id}`, async (caller) => {
      const o = json(req);
      const e = b.escrowFor(caller, "retry_payout", id, expectedVersion(o));
      allow(o, ["expectedVersion"]);
      const job = b.retryPayout(e);
      // The retry is accepted whatever the provider answers (ESC-18): a failure shows in the payout's status.
      await sendJobs(ctx, [job]);
      return { reply: { status: 200, body: { data: { deal: b.escrowJson(e), payout: b.payoutJson(e) } } }, approval: null };
    });
  }));

  r.get("/admin/payouts/stuck", wrap(ctx, (req) => {
    staffRead(req, "list_stuck_payouts");
    const v = query(req, "olderThan");
    let older = b.cfg.stuckPayoutSeconds;
    if (v !== null) {
      if (!/^[0-9]{1,12}$/.test(v)) throw invalid("olderThan must be a non-negative integer");
      older = Number(v);
    }
    return { status: 200, body: { data: b.stuck(older) } };
  }));

  r.get("/admin/dead-letters", wrap(ctx, (req) => {
    staffRead(req, "list_dead_letters");
    const { limit, offset } = page(req);
    const source = query(req, "source");
    const items: Json[] = b.deadLetters.filter((d) => source === null || d.route.name === source).map((d) => b.deadLetterJson(d));
    return { status: 200, body: paged(items, limit, offset) };
  }));

  r.post("/admin/dead-letters/:deadLetterId/replay", wrap(ctx, (req) => {
    const id = param(req, "deadLetterId");
    return audited(req, "replay_dead_letter", `dead_letter:${id}`, (caller) => {
      b.authorize(caller, "replay_dead_letter", null);
      return { reply: { status: 200, body: { data: b.replay(id) } }, approval: null };
    });
  }));

  r.post("/admin/webhook-secrets/:source/rotate", wrap(ctx, (req) => {
    const source = param(req, "source");
    return audited(req, "rotate_webhook_secret", `webhook_secret:${source}`, (caller) => {
      b.authorize(caller, "rotate_webhook_secret", null);
      const route = b.routeNamed(source);
      if (!route) throw new Refusal("not_found");
      const o = object(req, ["secret", "overlapSeconds"]);
      let overlap = b.cfg.secretOverlapSeconds;
      const v = o["overlapSeconds"];
      if (v !== undefined && v !== null) {
        const n = typeof v === "number" ? v : typeof v === "string" && /^[0-9]{1,10}$/.test(v) ? Number(v) : NaN;
        if (!Number.isSafeInteger(n) || n < 0 || n > 4_294_967_295) throw invalid("overlapSeconds must be a non-negative integer");
        overlap = n;
      }
      const secret = optStr(o, "secret");
      if (secret === "") throw invalid("secret must not be empty");
      return { reply: { status: 200, body: { data: b.rotate(route, secret, overlap) } }, approval: null };
    });
  }));

  r.put("/admin/users/:userId/role", wrap(ctx, (req) => {
    const id = param(req, "userId");
    return audited(req, "change_role", `user:${id}`, (caller) => {
      b.authorize(caller, "change_role", null);
      const user = b.userByPublicId(id);
      if (!user) throw new Refusal("not_found");
      const o = object(req, ["role"], ["role"]);
      const role = parseWireRole(reqStr(o, "role"));
      if (!role) throw invalid("role must be member, agent or admin");
      if (role === "admin" && user.role !== "admin") {
        const a = b.requestApproval(caller.user, { kind: "grant_admin", user: user.id }, id, { role: "admin" });
        return { reply: { status: 202, body: { data: b.approvalJson(a) } }, approval: a.publicId };
      }
      b.setRole(user.id, role);
      return { reply: { status: 200, body: { data: b.userJson(user.id) } }, approval: null };
    });
  }));

  r.delete("/admin/users/:userId", wrap(ctx, (req) => {
    const id = param(req, "userId");
    return audited(req, "delete_account", `user:${id}`, (caller) => {
      b.authorize(caller, "delete_account", null);
      const user = b.userByPublicId(id);
      if (!user) throw new Refusal("not_found");
      // An account party to an open deal cannot go: its funds would lose their owner.
      if (b.escrows.some((e) => (e.buyer === user.id || e.seller === user.id) && !["released", "refunded", "cancelled", "expired"].includes(e.state))) {
        throw new Refusal("invalid_transition");
      }
      user.deleted = true;
      b.revokeAll(user.id);
      b.voidApprovalsOf(user.id);
      return { reply: { status: 204 }, approval: null };
    });
  }));

  r.post("/admin/users/:userId/sessions/revoke", wrap(ctx, (req) => {
    const id = param(req, "userId");
    return audited(req, "revoke_user_sessions", `user:${id}`, (caller) => {
      b.authorize(caller, "revoke_user_sessions", null);
      const user = b.userByPublicId(id);
      if (!user) throw new Refusal("not_found");
      const revokedSessions = b.revokeAll(user.id);
      const voidedApprovals = b.voidApprovalsOf(user.id);
      const data: JsonObject = { revokedSessions, voidedApprovals };
      return { reply: { status: 200, body: { data } }, approval: null };
    });
  }));

  r.get("/admin/audit", wrap(ctx, (req) => {
    staffRead(req, "read_audit_log");
    const { limit, offset } = page(req);
    const actorId = query(req, "actorId");
    const actor = actorId === null ? undefined : b.userByPublicId(actorId);
    const items: Json[] = b.audit
      .filter((rec) => actor === undefined || (actor !== null && rec.actor === actor.id))
      .map((rec) => b.auditJson(rec));
    return { status: 200, body: paged(items, limit, offset) };
  }));

  r.get("/admin/ledger", wrap(ctx, (req) => {
    staffRead(req, "read_ledger");
    const { limit, offset } = page(req);
    const dealId = query(req, "dealId");
    const escrow = dealId === null ? undefined : b.escrowByPublicId(dealId);
    const items: Json[] = b.ledger
      .all()
      .filter((entry) => escrow === undefined || (escrow !== null && entry.escrow === escrow.id))
      .map((entry) => b.entryJson(entry));
    return { status: 200, body: paged(items, limit, offset) };
  }));

  return r;
}
