// Socket.IO (SPEC §4) on namespace /live:
// - RT-1/RT-2: the handshake authenticates with `{ "accessToken": … }` in the CONNECT auth payload, or with the
//   `sid` session cookie of the cookie flow; a token in the query string is ignored. Anything else: CONNECT_ERROR
//   `UNAUTHORIZED`. The main namespace refuses everyone.
// - RT-3: rooms are server-derived: `user:{id}` and, for staff, `staff`; `deal:watch` `{dealId}` joins `deal:{id}`
//   only when the user may see the deal, else acks `{ok:false, error:"NOT_FOUND"}`.
// - RT-4/RT-9: `deal:changed` `{dealId, status, version}` goes to the buyer's and seller's rooms and the deal's room.
// - RT-5: more than 20 events in a second get `{ok:false, error:"TOO_MANY_REQUESTS"}`; 5 s over the limit
//   disconnects the socket.
// - RT-6/RT-7: a revoked session's sockets are disconnected at once; losing staff leaves `staff` and the rooms of
//   deals the user may no longer see.
// - RT-8: malformed payloads and unknown events get `{ok:false, error:"INVALID_INPUT"}` (or are dropped without an
//   ack); Socket.IO itself closes a connection that sends an unparsable packet. Nothing here throws on input.

import type { Server as HttpServer } from "node:http";
import { Server, Socket } from "socket.io";
import { Role, isStaff } from "./domain/authz";
import { wireCode } from "./errors";
import { Backend, RealtimeSink } from "./state";
import { cookiesOf } from "./util";

export const NAMESPACE = "/live";
export const EVENTS_PER_SECOND = 20;
export const SUSTAINED_ABUSE_MS = 5000;
const MAX_ID_LEN = 128;

interface Identity {
  user: string;
  session: string;
  role: Role;
}

class RateLimiter {
  private windowStart: number | null = null;
  private count = 0;
  private overSince: number | null = null;

  /** "allowed", "limited" or "abusive" for one event at `now` (ms). */
  check(now: number): "allowed" | "limited" | "abusive" {
    let start: number;
    if (this.windowStart === null) {
      start = now;
    } else if (now - this.windowStart < 1000) {
      start = this.windowStart;
    } else {
      const elapsed = Math.floor((now - this.windowStart) / 1000);
      const wasOver = this.count > EVENTS_PER_SECOND;
      if (!(wasOver && elapsed === 1)) this.overSince = null;
      this.count = 0;
      start = this.windowStart + elapsed * 1000;
    }
    this.windowStart = start;
    this.count += 1;
    if (this.count <= EVENTS_PER_SECOND) return "allowed";
    if (this.overSince === null) this.overSince = start;
    return now - this.overSince >= SUSTAINED_ABUSE_MS ? "abusive" : "limited";
  }
}

interface Conn {
  socket: Socket;
  identity: Identity;
  deals: Set<string>;
  limiter: RateLimiter;
}

const error = (kind: "not_found" | "rate_limited" | "validation_failed"): { ok: false; error: string } => ({ ok: false, error: wireCode(kind) });
const OK = { ok: true };

function dealIdOf(payload: unknown): string | null {
  if (typeof payload !== "object" || payload === null || Array.isArray(payload)) return null;
  const id = (payload as Record<string, unknown>)["dealId"];
  if (typeof id !== "string" || id.length === 0 || id.length > MAX_ID_LEN || /[\u0000-\u001f\u007f]/.test(id)) return null;
  return id;
}

export function attachRealtime(http: HttpServer, backend: Backend, maxPayload: number): Server {
  const io = new Server(http, {
    path: "/socket.io/",
    serveClient: false,
    maxHttpBufferSize: maxPayload,
    cors: { origin: false },
  });
  const conns = new Map<string, Conn>();

  io.of("/").use((_socket, next) => next(new Error(wireCode("unauthenticated"))));

  const live = io.of(NAMESPACE);
  live.use((socket, next) => {
    const auth: unknown = socket.handshake.auth;
    let token: string | null = null;
    if (typeof auth === "object" && auth !== null && typeof (auth as Record<string, unknown>)["accessToken"] === "string") {
      token = (auth as Record<string, string>)["accessToken"]!;
    } else {
      const sid = cookiesOf(socket.handshake.headers.cookie).get("sid");
      if (sid !== undefined) token = sid;
    }
    const identity = token === null ? null : backend.socketIdentity(token);
    if (!identity) {
      next(new Error(wireCode("unauthenticated")));
      return;
    }
    socket.data = identity;
    next();
  });

  live.on("connection", (socket) => {
    const identity = socket.data as Identity;
    const conn: Conn = { socket, identity: { ...identity }, deals: new Set(), limiter: new RateLimiter() };
    conns.set(socket.id, conn);
    void socket.join(`user:${identity.user}`);
    if (isStaff(identity.role)) void socket.join("staff");

    // RT-5 and RT-8 for every incoming event, before its handler.
    socket.use((packet, next) => {
      const ack = typeof packet[packet.length - 1] === "function" ? (packet[packet.length - 1] as (v: unknown) => void) : null;
      const verdict = conn.limiter.check(Date.now());
      if (verdict === "abusive") {
        conns.delete(socket.id);
        socket.disconnect(true);
        return;
      }
      if (verdict === "limited") {
        ack?.(error("rate_limited"));
        return;
      }
      const name = packet[0];
      if (name !== "deal:watch" && name !== "deal:unwatch") {
        ack?.(error("validation_failed"));
        return;
      }
      next();
    });

    socket.on("deal:watch", (payload: unknown, ack: unknown) => {
      const reply = typeof ack === "function" ? (ack as (v: unknown) => void) : () => {};
      const dealId = dealIdOf(payload);
      if (dealId === null) return reply(error("validation_failed"));
      // SES-7: the account's role now, not the one the socket connected with.
      const role = backend.currentRole(conn.identity.user);
      if (role === null || !backend.maySubscribe(conn.identity.user, role, dealId)) return reply(error("not_found"));
      void socket.join(`deal:${dealId}`);
      conn.deals.add(dealId);
      return reply(OK);
    });

    socket.on("deal:unwatch", (payload: unknown, ack: unknown) => {
      const reply = typeof ack === "function" ? (ack as (v: unknown) => void) : () => {};
      const dealId = dealIdOf(payload);
      if (dealId === null) return reply(error("validation_failed"));
      void socket.leave(`deal:${dealId}`);
      conn.deals.delete(dealId);
      return reply(OK);
    });

    socket.on("disconnect", () => {
      conns.delete(socket.id);
    });
  });

  const sink: RealtimeSink = {
    escrowUpdated(e) {
      // RT-9: ids, status and version only.
      live.to([`user:${e.buyer}`, `user:${e.seller}`, `deal:${e.dealId}`]).emit("deal:changed", {
        dealId: e.dealId,
        status: e.status,
        version: e.version,
      });
    },
    sessionRevoked(session) {
      for (const [id, c] of conns) {
        if (c.identity.session === session) {
          conns.delete(id);
          c.socket.disconnect(true);
        }
      }
    },
    roleChanged(user, role) {
      for (const c of conns.values()) {
        if (c.identity.user !== user) continue;
        c.identity.role = role;
        if (isStaff(role)) {
          void c.socket.join("staff");
          continue;
        }
        void c.socket.leave("staff");
        for (const dealId of [...c.deals]) {
          if (!backend.maySubscribe(user, role, dealId)) {
            void c.socket.leave(`deal:${dealId}`);
            c.deals.delete(dealId);
          }
        }
      }
    },
  };
  backend.sink = sink;
  return io;
}
