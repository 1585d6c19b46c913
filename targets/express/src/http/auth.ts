// Sign-in, sessions and step-up. Two flows share one session store:
// - token flow (API clients): POST /auth/token answers an access and a refresh token in the body; requests carry
//   `Authorization: Bearer <access>`; POST /auth/token/refresh rotates the refresh token.
// - cookie flow (browsers): POST /auth/login sets `sid` (access, HttpOnly), `rid` (refresh, HttpOnly, only sent to
//   /api/v1/auth) and `csrf` (readable); every state-changing request authenticated by cookie must echo the csrf
//   cookie in `X-CSRF-Token` (double submit); POST /auth/refresh rotates both cookies.
// A session opened in one flow is never accepted through the other.

import { Router, Request } from "express";
import { randomBytes } from "node:crypto";
import { Refusal, invalid } from "../errors";
import { ACCESS_TTL_SECONDS, REFRESH_TTL_SECONDS } from "../sessions";
import { Caller } from "../state";
import { ctEqual, JsonObject, isObject } from "../util";
import { Ctx, Reply, wrap } from "./handler";
import { bearer, clientAddress, cookies, isSafeMethod, object, reqStr } from "./request";
import { Passkeys } from "../passkeys";

export const ACCESS_COOKIE = "sid";
export const REFRESH_COOKIE = "rid";
export const CSRF_COOKIE = "csrf";
export const CSRF_HEADER = "x-csrf-token";

/** The signed-in caller, or the refusal (AZ-1). */
export function authenticate(ctx: Ctx, req: Request): Caller {
  const token = bearer(req);
  if (token !== null) {
    const caller = ctx.backend.authenticateToken(token);
    if (caller.session.transport !== "token") throw new Refusal("unauthenticated");
    ctx.backend.touch(caller);
    return caller;
  }
  const jar = cookies(req);
  const sid = jar.get(ACCESS_COOKIE);
  if (sid === undefined) throw new Refusal("unauthenticated");
  const caller = ctx.backend.authenticateToken(sid);
  if (caller.session.transport !== "cookie") throw new Refusal("unauthenticated");
  checkCsrf(req);
  ctx.backend.touch(caller);
  return caller;
}

/** Double-submit: a state-changing request must echo the csrf cookie in X-CSRF-Token. */
export function checkCsrf(req: Request): void {
  if (isSafeMethod(req.method)) return;
  const cookie = cookies(req).get(CSRF_COOKIE);
  const header = req.headers[CSRF_HEADER];
  if (typeof cookie !== "string" || cookie === "" || typeof header !== "string" || !ctEqual(cookie, header)) {
    throw new Refusal("csrf_failed");
  }
}

function cookie(name: string, value: string, maxAge: number, path: string, httpOnly: boolean, secure: boolean): string {
  return `${name}=${encodeURIComponent(value)}; Path=${path}; Max-Age=${maxAge}; SameSite=Strict${httpOnly ? "; HttpOnly" : ""}${secure ? "; Secure" : ""}`;
}

function sessionCookies(ctx: Ctx, access: string, refresh: string, csrf: string | null): string[] {
  const secure = ctx.backend.cfg.secureCookies;
  const out = [
    cookie(ACCESS_COOKIE, access, ACCESS_TTL_SECONDS, "/", true, secure),
    cookie(REFRESH_COOKIE, refresh, REFRESH_TTL_SECONDS, "/api/v1/auth", true, secure),
  ];
  if (csrf !== null) out.push(cookie(CSRF_COOKIE, csrf, REFRESH_TTL_SECONDS, "/", false, secure));
  return out;
}

function clearCookies(ctx: Ctx): string[] {
  const secure = ctx.backend.cfg.secureCookies;
  return [cookie(ACCESS_COOKIE, "", 0, "/", true, secure), cookie(REFRESH_COOKIE, "", 0, "/api/v1/auth", true, secure)];
}

function tokenReply(ctx: Ctx, issued: { session: { publicId: string; user: number; accessExpiresAt: number }; access: string; refresh: string }): Reply {
  const b = ctx.backend;
  return {
    status: 200,
    body: {
      data: {
        accessToken: issued.access,
        refreshToken: issued.refresh,
        tokenType: "Bearer",
        expiresIn: issued.session.accessExpiresAt - b.now(),
        session: { id: issued.session.publicId },
        user: b.userJson(issued.session.user),
      },
    },
  };
}

function cookieReply(ctx: Ctx, issued: { session: { publicId: string; user: number }; access: string; refresh: string }, keepCsrf: string | null): Reply {
  const csrf = keepCsrf ?? randomBytes(24).toString("base64url");
  return {
    status: 200,
    body: { data: { session: { id: issued.session.publicId }, user: ctx.backend.userJson(issued.session.user), csrfToken: csrf } },
    cookies: sessionCookies(ctx, issued.access, issued.refresh, csrf),
  };
}

function credentials(req: Request): { email: string; password: string } {
  const o = object(req, ["email", "password"], ["email", "password"]);
  return { email: reqStr(o, "email"), password: reqStr(o, "password") };
}

function agent(req: Request): string | null {
  const a = req.headers["user-agent"];
  return typeof a === "string" ? a.slice(0, 300) : null;
}

export function authRouter(ctx: Ctx, passkeys: Passkeys): Router {
  const r = Router();
  const b = ctx.backend;
  const client = (req: Request): string => clientAddress(req, b.cfg.trustForwardedFor);
  const passkeysOn = (): void => {
    if (!b.cfg.passkeysEnabled) throw new Refusal("passkeys_disabled");
  };

  // Token flow.
  r.post("/auth/token", wrap(ctx, (req) => {
    const { email, password } = credentials(req);
    return tokenReply(ctx, b.signIn(email, password, client(req), "token", agent(req)));
  }));
  r.post("/auth/token/refresh", wrap(ctx, (req) => {
    const o = object(req, ["refreshToken"], ["refreshToken"]);
    const issued = b.refresh(reqStr(o, "refreshToken"));
    if (issued.session.transport !== "token") throw new Refusal("invalid_grant");
    return tokenReply(ctx, issued);
  }));

  // Cookie flow.
  r.get("/auth/csrf", wrap(ctx, (req) => {
    const existing = cookies(req).get(CSRF_COOKIE);
    const csrf = existing && existing.length >= 16 ? existing : randomBytes(24).toString("base64url");
    return { status: 200, body: { data: { csrfToken: csrf } }, cookies: [cookie(CSRF_COOKIE, csrf, REFRESH_TTL_SECONDS, "/", false, b.cfg.secureCookies)] };
  }));
  r.post("/auth/login", wrap(ctx, (req) => {
    const { email, password } = credentials(req);
    return cookieReply(ctx, b.signIn(email, password, client(req), "cookie", agent(req)), null);
  }));
  r.post("/auth/refresh", wrap(ctx, (req) => {
    object(req, []);
    checkCsrf(req);
    const token = cookies(req).get(REFRESH_COOKIE);
    if (!token) throw new Refusal("invalid_grant");
    const issued = b.refresh(token);
    if (issued.session.transport !== "cookie") throw new Refusal("invalid_grant");
    return cookieReply(ctx, issued, cookies(req).get(CSRF_COOKIE) ?? null);
  }));

  // Both flows.
  r.post("/auth/logout", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, "logout", null);
    b.logout(caller);
    return { status: 204, cookies: caller.session.transport === "cookie" ? clearCookies(ctx) : [] };
  }));
  r.post("/auth/reauthenticate", wrap(ctx, async (req) => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, "step_up", null);
    const o = object(req, ["password", "otp", "passkey"]);
    const passkey = o["passkey"];
    if (passkey !== undefined) {
      passkeysOn();
      if (!isObject(passkey)) throw invalid("passkey must be a credential object");
      const user = await passkeys.assert(passkey, b.now());
      return { status: 200, body: { data: b.stepUpVerified(caller, user) } };
    }
    const password = reqStr(o, "password");
    const otp = reqStr(o, "otp");
    if (!/^[0-9]{6}$/.test(otp)) throw invalid("otp must be 6 digits");
    return { status: 200, body: { data: b.stepUp(caller, password, otp) } };
  }));

  // Own sessions and password.
  r.get("/account/sessions", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, "list_sessions", null);
    return { status: 200, body: { data: b.listSessions(caller) } };
  }));
  r.delete("/account/sessions/:sessionId", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, "revoke_own_session", null);
    b.revokeOwn(caller, String(req.params["sessionId"]));
    return { status: 204 };
  }));
  r.post("/account/password", wrap(ctx, (req) => {
    const caller = authenticate(ctx, req);
    b.authorize(caller, "change_password", null);
    const o = object(req, ["currentPassword", "newPassword"], ["currentPassword", "newPassword"]);
    b.changePassword(caller, reqStr(o, "currentPassword"), reqStr(o, "newPassword"));
    return { status: 204 };
  }));

  // Passkeys (SES-8): 404 PASSKEYS_OFF unless PASSKEYS_ENABLED.
  r.post("/auth/passkeys/registration/options", wrap(ctx, async (req) => {
    const caller = authenticate(ctx, req);
    passkeysOn();
    b.authorize(caller, "passkey_register_options", null);
    const u = b.users[caller.user]!;
    return { status: 200, body: { data: await passkeys.registrationOptions(u, b.now()) } };
  }));
  r.post("/auth/passkeys/registration", wrap(ctx, async (req) => {
    const caller = authenticate(ctx, req);
    passkeysOn();
    b.authorize(caller, "passkey_register", null);
    const o = object(req, CREDENTIAL_FIELDS, ["response"]);
    const id = await passkeys.register(caller.user, o, b.now());
    return { status: 201, body: { data: { credentialId: id } } };
  }));
  r.post("/auth/passkeys/login/options", wrap(ctx, async () => {
    passkeysOn();
    return { status: 200, body: { data: await passkeys.authenticationOptions(b.now()) } };
  }));
  r.post("/auth/passkeys/login", wrap(ctx, async (req) => {
    passkeysOn();
    const o: JsonObject = object(req, CREDENTIAL_FIELDS, ["response"]);
    const user = await passkeys.assert(o, b.now());
    const u = b.users[user];
    if (!u || u.deleted) throw new Refusal("invalid_credentials", "unknown account");
    const viaCookie = req.query["transport"] === "cookie";
    const issued = b.openPasskeySession(user, client(req), viaCookie ? "cookie" : "token", agent(req));
    return viaCookie ? cookieReply(ctx, issued, null) : tokenReply(ctx, issued);
  }));

  return r;
}

const CREDENTIAL_FIELDS = ["id", "rawId", "type", "response", "clientExtensionResults", "authenticatorAttachment"];
