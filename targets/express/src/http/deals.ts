// Deals (escrows) for their participants: create, read, list, describe, pay, prove a manual payment, cancel,
// ship, confirm, dispute, refund. Authorization comes before state (ESC-20): a stranger gets NOT_FOUND.

import { Router, Request } from "express";
import { isStaff } from "../domain/authz";
import { parseWireState, isTerminal } from "../domain/escrow";
import { parseProvider } from "../domain/ledger";
import { Refusal, invalid } from "../errors";
import { ProviderError } from "../providers";
import { Json } from "../util";
import { authenticate } from "./auth";
import { Ctx, Reply, wrap } from "./handler";
import { allow, expectedVersion, json, moneyField, object, page, paged, query, reqStr, text } from "./request";

export function dealsRouter(ctx: Ctx): Router {
  const r = Router();
  const b = ctx.backend;
  const dealId = (req: Request): string => String(req.params["dealId"]);

  r.post("/deals", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, "create_escrow", null);
    const o = object(req, ["sellerId", "price", "paymentMethod", "description"], ["sellerId", "price", "paymentMethod"]);
    const price = moneyField(o, "price");
    const provider = parseProvider(reqStr(o, "paymentMethod"));
    if (!provider) throw invalid("paymentMethod must be shkeeper, request_network or manual_wallet");
    const description = text(o, "description", 2000) ?? "";
    const e = b.createEscrow(caller.user, reqStr(o, "sellerId"), price, provider, description);
    return { status: 201, body: { data: b.escrowJson(e) } };
  }));

  r.get("/deals", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, "list_escrows", null);
    const s = query(req, "status");
    const state = s === null ? null : parseWireState(s);
    if (s !== null && state === null) throw invalid("unknown status");
    const { limit, offset } = page(req);
    const everyone = isStaff(caller.role);
    const items: Json[] = [...b.escrows]
      .reverse()
      .filter((e) => everyone || e.buyer === caller.user || e.seller === caller.user)
      .filter((e) => state === null || e.state === state)
      .map((e) => b.escrowJson(e));
    return { status: 200, body: paged(items, limit, offset) };
  }));

  r.get("/deals/:dealId", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    const e = b.escrowFor(caller, "get_escrow", dealId(req), null);
    return { status: 200, body: { data: b.escrowJson(e) } };
  }));

  r.patch("/deals/:dealId", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    const raw = json(req);
    const e = b.escrowFor(caller, "update_escrow", dealId(req), expectedVersion(raw));
    allow(raw, ["description", "expectedVersion"]);
    if (isTerminal(e.state)) throw new Refusal("invalid_transition");
    const description = text(raw, "description", 2000);
    if (description === null) throw invalid('field "description" is required');
    e.description = description;
    e.updatedAt = b.now();
    return { status: 200, body: { data: b.escrowJson(e) } };
  }));

  r.post("/deals/:dealId/checkout", wrap(ctx, async (req) => {
    const caller = authenticate(ctx, req);
    const o = json(req);
    const e = b.startPaymentCheck(caller, dealId(req), expectedVersion(o));
    allow(o, ["expectedVersion"]);
    if (e.instructions !== null) {
      // PRV-1: a retried checkout answers the invoice it already has, without asking the provider.
      return { status: 200, body: { data: { deal: b.escrowJson(e), payment: e.instructions } } };
    }
    let invoice;
    try {
      invoice = await ctx.providers.createInvoice(e.provider, `inv-${e.publicId}`, e.amount);
    } catch (err) {
      if (err instanceof ProviderError) throw new Refusal("provider_unavailable", err.message);
      throw err;
    }
    b.bindInvoice(e, invoice.binding, invoice.instructions);
    return { status: 200, body: { data: { deal: b.escrowJson(e), payment: e.instructions ?? invoice.instructions } } };
  }));

  r.post("/deals/:dealId/payment-proofs", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    const o = json(req);
    const e = b.escrowFor(caller, "submit_payment_proof", dealId(req), expectedVersion(o));
    allow(o, ["txHash", "amount", "toAddress", "note", "expectedVersion"], ["txHash", "amount", "toAddress"]);
    const txHash = reqStr(o, "txHash");
    if (txHash.length === 0 || txHash.length > 200) throw invalid("txHash must be 1 to 200 characters");
    const amount = moneyField(o, "amount");
    const destination = reqStr(o, "toAddress");
    text(o, "note", 2000);
    const proof = b.submitProof(e, { txHash, amount, destination });
    return { status: 201, body: { data: { proof: b.proofJson(e, proof), deal: b.escrowJson(e) } } };
  }));

  const action = (path: string, run: (req: Request) => Reply): void => {
    r.post(`/deals/:dealId/${path}`, wrap(ctx, run));
  };

  action("cancel", (req) => {
    const caller = authenticate(ctx, req);
    const o = json(req);
    const e = b.escrowFor(caller, "cancel_escrow", dealId(req), expectedVersion(o));
    allow(o, ["expectedVersion"]);
    if (e.received !== 0n) throw new Refusal("invalid_transition");
    b.changeState(e, "cancel");
    return { status: 200, body: { data: b.escrowJson(e) } };
  });
  action("ship", (req) => {
    const caller = authenticate(ctx, req);
    const o = json(req);
    const e = b.escrowFor(caller, "mark_delivered", dealId(req), expectedVersion(o));
    allow(o, ["expectedVersion"]);
    b.changeState(e, "mark_delivered");
    e.deliveredAt = b.now();
    return { status: 200, body: { data: b.escrowJson(e) } };
  });
  action("confirm", (req) => {
    const caller = authenticate(ctx, req);
    const o = json(req);
    const e = b.escrowFor(caller, "confirm_receipt", dealId(req), expectedVersion(o));
    allow(o, ["expectedVersion"]);
    b.release(e, "confirm_receipt", b.requestCause());
    return { status: 200, body: { data: b.escrowJson(e) } };
  });
  action("dispute", (req) => {
    const caller = authenticate(ctx, req);
    const o = json(req);
    const e = b.escrowFor(caller, "open_dispute", dealId(req), expectedVersion(o));
    allow(o, ["reason", "expectedVersion"]);
    text(o, "reason", 2000);
    b.changeState(e, "open_dispute");
    return { status: 200, body: { data: b.escrowJson(e) } };
  });
  action("refund", (req) => {
    const caller = authenticate(ctx, req);
    const o = json(req);
    const e = b.escrowFor(caller, "refund_voluntarily", dealId(req), expectedVersion(o));
    allow(o, ["expectedVersion"]);
    b.refund(e, "refund_voluntarily", b.requestCause());
    return { status: 200, body: { data: b.escrowJson(e) } };
  });

  return r;
}
