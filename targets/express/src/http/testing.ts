// Test-only fixtures (SPEC §11): users with a role, password and TOTP seed, a test clock, and run-time switches for
// passkeys and providers. They exist only with CONFORM_TEST_MODE=1; otherwise every /testing route answers 404.

import { Router } from "express";
import { parseProvider } from "../domain/ledger";
import { Refusal, invalid } from "../errors";
import { LATEST_CLOCK, parseWireRole } from "../state";
import { decodeBase32, rfc3339, systemNow } from "../util";
import { Ctx, wrap } from "./handler";
import { object, optStr, reqStr } from "./request";

export function testingRouter(ctx: Ctx): Router {
  const r = Router();
  const b = ctx.backend;
  r.use("/testing", (_req, _res, next) => {
    if (!b.cfg.testMode) {
      next(new Refusal("not_found"));
      return;
    }
    next();
  });

  r.post("/testing/users", wrap(ctx, (req) => {
    const o = object(req, ["email", "password", "role", "totpSecret"], ["email", "password", "role"]);
    const email = reqStr(o, "email");
    if (!email.includes("@") || email.length > 320) throw invalid("email must be an address");
    const password = reqStr(o, "password");
    const role = parseWireRole(reqStr(o, "role"));
    if (!role) throw invalid("role must be member, agent or admin");
    const seedText = optStr(o, "totpSecret");
    let seed: Buffer | null = null;
    if (seedText !== null && seedText !== "") {
      seed = decodeBase32(seedText);
      if (!seed) throw invalid("totpSecret must be base32");
    }
    const user = b.createUser(email, password, role, seed);
    return { status: 201, body: { data: b.userJson(user.id) } };
  }));

  r.post("/testing/clock", wrap(ctx, (req) => {
    const o = object(req, ["advanceBy", "setTo"]);
    const advance = o["advanceBy"];
    const setTo = o["setTo"];
    if (advance !== undefined && setTo === undefined) {
      const n = typeof advance === "number" ? advance : typeof advance === "string" && /^[0-9]{1,15}$/.test(advance) ? Number(advance) : NaN;
      if (!Number.isSafeInteger(n) || n < 0) throw invalid("advanceBy must be a non-negative integer");
      if (b.now() + n >= LATEST_CLOCK) throw invalid("advanceBy would move the clock past the year 9999");
      b.clockOffset += n;
    } else if (setTo !== undefined && advance === undefined) {
      const at = typeof setTo === "string" ? Date.parse(setTo) : NaN;
      if (!Number.isFinite(at) || at < 0 || at / 1000 >= LATEST_CLOCK) throw invalid("setTo must be an RFC 3339 time between 1970 and 9999");
      b.clockOffset = Math.floor(at / 1000) - systemNow();
    } else {
      throw invalid("give exactly one of advanceBy and setTo");
    }
    b.fireDeadlines();
    return { status: 200, body: { data: { now: rfc3339(b.now()) } } };
  }));

  // {passkeysEnabled: bool} and/or {provider, enabled: bool}: what conform's [fixtures.configure] sends (SES-8, PRV-3).
  r.post("/testing/config", wrap(ctx, (req) => {
    const o = object(req, ["passkeysEnabled", "provider", "enabled"]);
    const flag = (name: string): boolean | undefined => {
      const v = o[name];
      if (v === undefined) return undefined;
      if (typeof v !== "boolean") throw invalid(`${name} must be true or false`);
      return v;
    };
    const passkeys = flag("passkeysEnabled");
    const enabled = flag("enabled");
    const name = o["provider"];
    if ((name === undefined) !== (enabled === undefined)) throw invalid("give provider and enabled together");
    if (passkeys === undefined && enabled === undefined) throw invalid("give passkeysEnabled, or provider and enabled");
    const provider = typeof name === "string" ? parseProvider(name) : null;
    if (name !== undefined && !provider) throw invalid("provider must be a known payment method");
    if (passkeys !== undefined) b.cfg.passkeysEnabled = passkeys;
    if (provider && enabled !== undefined) {
      b.cfg.disabledProviders = b.cfg.disabledProviders.filter((p) => p !== provider);
      if (!enabled) b.cfg.disabledProviders.push(provider);
    }
    return { status: 200, body: { data: { passkeysEnabled: b.cfg.passkeysEnabled, disabledProviders: b.cfg.disabledProviders } } };
  }));
  return r;
}
