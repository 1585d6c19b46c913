// Provider webhooks, verified on the raw bytes (express.raw runs for these routes; no JSON parser touches the
// body before verification). Deduplication and the effect happen in one synchronous section (WH-4); a replayed
// or duplicated delivery gets the provider's success status with no second effect (WH-3); every failure is
// dead-lettered with its reason, redacted headers and raw body (WH-5).

import { Router, Request } from "express";
import { Refusal } from "../errors";
import { Route } from "../state";
import { dedupKeys } from "../webhooks/notice";
import { Ctx, Reply, wrap } from "./handler";
import { rawBody } from "./request";

function headerPairs(req: Request): [string, string][] {
  const pairs: [string, string][] = [];
  const raw = req.rawHeaders;
  for (let i = 0; i + 1 < raw.length; i += 2) pairs.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
  return pairs;
}

export function webhooksRouter(ctx: Ctx): Router {
  const r = Router();
  const b = ctx.backend;

  const receive = (route: Route, success: number) => (req: Request): Reply => {
    const headers = headerPairs(req);
    const body = rawBody(req);
    const notice = b.webhookCheck(route, headers, body);
    if (b.seen(dedupKeys(notice))) return { status: success, body: { data: { result: "DUPLICATE" } } };
    const result = b.webhookApply(route, notice, headers, body);
    return { status: success, body: { data: { result: result === "accepted" ? "ACCEPTED" : "DEAD_LETTERED" } } };
  };

  // SHKeeper counts only HTTP 202 as delivered.
  r.post("/hooks/shkeeper", wrap(ctx, receive({ scheme: "shkeeper", name: "shkeeper" }, 202)));
  r.post("/hooks/request-network", wrap(ctx, receive({ scheme: "request_network", name: "request_network" }, 200)));
  r.post("/hooks/standard/:source", wrap(ctx, (req) => {
    const route: Route = { scheme: "standard_webhooks", name: String(req.params["source"]) };
    if (!b.ring(route)) throw new Refusal("not_found");
    return receive(route, 200)(req);
  }));
  return r;
}
