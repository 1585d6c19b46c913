// Sessions (SPEC §5): short-lived access tokens, rotating refresh tokens with reuse detection (a family is one
// session: presenting a used refresh token revokes it, RFC 9700 §4.14.2), revocation that takes effect at once,
// session-bound step-up, and a sliding sign-in limit per account name and per client.

import { Refusal } from "./errors";
import { opaqueToken, uuid } from "./util";

export const ACCESS_TTL_SECONDS = 900;
export const REFRESH_TTL_SECONDS = 7 * 24 * 3600;
export const ABSOLUTE_LIFETIME_SECONDS = 30 * 24 * 3600;
export const SIGN_IN_LIMIT = 10;
export const SIGN_IN_WINDOW_SECONDS = 60;
export const STEP_UP_WINDOW_SECONDS = 300;

export type RevocationReason = "logout" | "user_revoked" | "admin_revoked" | "password_changed" | "refresh_reuse";

export interface SessionRecord {
  id: number;
  /** The session's public id (unguessable). */
  publicId: string;
  user: number;
  createdAt: number;
  endsAt: number;
  lastUsedAt: number;
  refresh: string;
  refreshExpiresAt: number;
  access: string;
  accessExpiresAt: number;
  stepUpAt: number | null;
  revoked: { reason: RevocationReason; at: number } | null;
  userAgent: string | null;
  /** How the session travels: tokens in the body, or cookies (then CSRF applies). */
  transport: "token" | "cookie";
}

export interface Issued {
  session: SessionRecord;
  access: string;
  refresh: string;
}

/** A signed-in name: an account number, or a name without an account (still rate-limited). */
export type SignInName = { account: number } | { unknown: string };

function nameKey(name: SignInName): string {
  return "account" in name ? `a:${name.account}` : `u:${name.unknown}`;
}

export class SessionStore {
  readonly sessions: SessionRecord[] = [];
  private readonly accessTokens = new Map<string, { session: number; expiresAt: number }>();
  private readonly refreshTokens = new Map<string, number>();
  private readonly byName = new Map<string, number[]>();
  private readonly byClient = new Map<string, number[]>();

  private full(list: number[] | undefined, now: number): boolean {
    if (!list) return false;
    return list.filter((at) => now - at < SIGN_IN_WINDOW_SECONDS).length >= SIGN_IN_LIMIT;
  }

  private record(map: Map<string, number[]>, key: string, now: number): void {
    const kept = (map.get(key) ?? []).filter((at) => now - at < SIGN_IN_WINDOW_SECONDS);
    kept.push(now);
    map.set(key, kept);
  }

  /** SES-10: 10 attempts a minute per name and per client; a refused attempt is not counted. */
  admitAttempt(name: SignInName, client: string, now: number): void {
    const key = nameKey(name);
    if (this.full(this.byName.get(key), now) || this.full(this.byClient.get(client), now)) {
      throw new Refusal("rate_limited");
    }
    this.record(this.byName, key, now);
    this.record(this.byClient, client, now);
  }

  signIn(name: SignInName, passwordOk: boolean, client: string, now: number, transport: "token" | "cookie", userAgent: string | null): Issued {
    this.admitAttempt(name, client, now);
    if (!("account" in name) || !passwordOk) throw new Refusal("invalid_credentials");
    return this.open(name.account, now, transport, userAgent);
  }

  open(user: number, now: number, transport: "token" | "cookie", userAgent: string | null): Issued {
    const endsAt = now + ABSOLUTE_LIFETIME_SECONDS;
    const record: SessionRecord = {
      id: this.sessions.length,
      publicId: uuid(),
      user,
      createdAt: now,
      endsAt,
      lastUsedAt: now,
      refresh: "",
      refreshExpiresAt: now,
      access: "",
      accessExpiresAt: now,
      stepUpAt: null,
      revoked: null,
      userAgent,
      transport,
    };
    this.sessions.push(record);
    return this.issue(record, now);
  }

  private issue(record: SessionRecord, now: number): Issued {
    const access = opaqueToken();
    const refresh = opaqueToken();
    const accessExpiresAt = Math.min(now + ACCESS_TTL_SECONDS, record.endsAt);
    const refreshExpiresAt = Math.min(now + REFRESH_TTL_SECONDS, record.endsAt);
    this.accessTokens.set(access, { session: record.id, expiresAt: accessExpiresAt });
    this.refreshTokens.set(refresh, record.id);
    record.refresh = refresh;
    record.refreshExpiresAt = refreshExpiresAt;
    record.access = access;
    record.accessExpiresAt = accessExpiresAt;
    record.lastUsedAt = now;
    return { session: record, access, refresh };
  }

  /** SES-2, SES-3. `onRevoked` hears of a family revoked for reuse. */
  refresh(token: string, now: number, onRevoked: (s: SessionRecord) => void): Issued {
    const id = this.refreshTokens.get(token);
    const record = id === undefined ? undefined : this.sessions[id];
    if (!record || record.revoked) throw new Refusal("invalid_grant");
    if (record.refresh !== token) {
      // Only a used token differs from the current one of a live family: someone holds a stolen copy.
      if (this.revoke(record, "refresh_reuse", now)) onRevoked(record);
      throw new Refusal("invalid_grant");
    }
    if (now >= record.refreshExpiresAt) throw new Refusal("invalid_grant");
    return this.issue(record, now);
  }

  /** The live session behind an access token (SES-4, SES-6); an old access token survives a refresh until expiry. */
  authenticate(access: string, now: number): SessionRecord {
    const entry = this.accessTokens.get(access);
    if (!entry) throw new Refusal("unauthenticated");
    const record = this.sessions[entry.session];
    if (!record || now >= entry.expiresAt || record.revoked) throw new Refusal("unauthenticated");
    return record;
  }

  isActive(record: SessionRecord, now: number): boolean {
    return record.revoked === null && (now < record.refreshExpiresAt || now < record.accessExpiresAt);
  }

  revoke(record: SessionRecord, reason: RevocationReason, now: number): boolean {
    if (record.revoked) return false;
    record.revoked = { reason, at: now };
    return true;
  }

  /** The sessions of `user` revoked, except `keep`. */
  revokeAllExcept(user: number, keep: number | null, reason: RevocationReason, now: number): SessionRecord[] {
    const revoked: SessionRecord[] = [];
    for (const s of this.sessions) {
      if (s.user !== user || s.id === keep) continue;
      if (this.revoke(s, reason, now)) revoked.push(s);
    }
    return revoked;
  }

  sessionsOf(user: number, now: number): SessionRecord[] {
    return this.sessions.filter((s) => s.user === user && this.isActive(s, now));
  }

  /** SES-9: elevates only this session. */
  elevate(record: SessionRecord, verified: boolean, now: number): void {
    if (!this.isActive(record, now)) throw new Refusal("unauthenticated");
    if (!verified) throw new Refusal("invalid_credentials");
    record.stepUpAt = now;
  }
}
