// The handler wrapper: deadlines fire before each request is decided, refusals become this backend's error body,
// payouts queued by the request are sent to the provider before the answer goes out, nothing crashes the server.

import type { NextFunction, Request, Response } from "express";
import { Refusal } from "../errors";
import { Backend } from "../state";
import { Providers, PayoutJob } from "../providers";
import { Json } from "../util";

export interface Reply {
  status: number;
  body?: Json;
  cookies?: string[];
}

export type Handler = (req: Request) => Promise<Reply> | Reply;

export interface Ctx {
  backend: Backend;
  providers: Providers;
}

/** JSON with bigint-free values; money is already a decimal string. */
function write(res: Response, reply: Reply): void {
  if (reply.cookies && reply.cookies.length > 0) res.setHeader("Set-Cookie", reply.cookies);
  res.setHeader("Cache-Control", "no-store");
  if (reply.body === undefined) {
    res.status(reply.status).end();
    return;
  }
  res.status(reply.status).type("application/json").send(JSON.stringify(reply.body));
}

export function sendError(res: Response, e: unknown): void {
  if (e instanceof Refusal) {
    if (e.kind === "rate_limited") res.setHeader("Retry-After", "60");
    write(res, { status: e.status, body: e.body() });
    return;
  }
  console.error("express-target: internal error:", e);
  const r = new Refusal("internal");
  write(res, { status: r.status, body: r.body() });
}

export async function sendJobs(ctx: Ctx, jobs: PayoutJob[]): Promise<void> {
  for (const job of jobs) {
    let error: string | null = null;
    try {
      await ctx.providers.sendPayout(job);
    } catch (e) {
      error = (e as Error).message;
    }
    ctx.backend.payoutResult(job.escrow, error);
  }
}

export function wrap(ctx: Ctx, handler: Handler) {
  return async (req: Request, res: Response, _next: NextFunction): Promise<void> => {
    try {
      ctx.backend.fireDeadlines();
      let reply: Reply;
      try {
        reply = await handler(req);
      } finally {
        // Whatever the outcome, payouts a state change queued go out before the answer (PRV-4).
        await sendJobs(ctx, ctx.backend.takeJobs());
      }
      write(res, reply);
    } catch (e) {
      sendError(res, e);
    }
  };
}
