// A smoke run against a running target (CONFORM_TEST_MODE=1) and, for the SHKeeper flow, a running
// `conform simulate shkeeper`: node scripts/smoke.mjs http://127.0.0.1:3000 [http://127.0.0.1:PORT-of-simulator]
// It prints one line per check and exits non-zero on the first failure.

import { createHmac } from "node:crypto";

const base = (process.argv[2] ?? "http://127.0.0.1:3000").replace(/\/$/, "");
const sim = process.argv[3] ?? null;
const api = `${base}/api/v1`;
const tag = Date.now().toString(36);
let failures = 0;

function check(name, ok, detail = "") {
  console.log(`${ok ? "ok  " : "FAIL"} ${name}${ok ? "" : ` ${detail}`}`);
  if (!ok) failures += 1;
}

async function call(method, path, { token, body, headers = {}, raw } = {}) {
  const h = { ...headers };
  if (token) h.authorization = `Bearer ${token}`;
  if (body !== undefined) h["content-type"] = "application/json";
  const r = await fetch(`${api}${path}`, { method, headers: h, body: raw ?? (body === undefined ? undefined : JSON.stringify(body)) });
  const text = await r.text();
  let json = null;
  try { json = JSON.parse(text); } catch {}
  return { status: r.status, json, text };
}

function base32Totp(seed, t) {
  const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  let bits = 0, value = 0; const out = [];
  for (const c of seed) { value = (value << 5) | alphabet.indexOf(c); bits += 5; if (bits >= 8) { out.push((value >>> (bits - 8)) & 255); bits -= 8; } }
  const msg = Buffer.alloc(8); msg.writeBigUInt64BE(BigInt(Math.floor(t / 30)));
  const mac = createHmac("sha1", Buffer.from(out)).update(msg).digest();
  const o = mac[19] & 15;
  return String((((mac[o] & 127) << 24) | (mac[o + 1] << 16) | (mac[o + 2] << 8) | mac[o + 3]) % 1e6).padStart(6, "0");
}

const SEED = "JBSWY3DPEHPK3PXP";
async function user(name, role) {
  const email = `${name}-${tag}@smoke.test`;
  const r = await call("POST", "/testing/users", { body: { email, password: `pw-${name}`, role, totpSecret: SEED } });
  check(`fixture ${name}`, r.status === 201, r.text);
  const s = await call("POST", "/auth/token", { body: { email, password: `pw-${name}` }, headers: { "x-forwarded-for": `10.9.${name.length}.1` } });
  check(`sign in ${name}`, s.status === 200, s.text);
  return { id: r.json.data.id, token: s.json.data.accessToken, refresh: s.json.data.refreshToken, email };
}

async function stepUp(u) {
  const r = await call("POST", "/auth/reauthenticate", { token: u.token, body: { password: `pw-${u.email.split("-")[0]}`, otp: base32Totp(SEED, Math.floor(Date.now() / 1000)) } });
  check("step-up", r.status === 200, r.text);
}

const buyer = await user("buyer", "member");
const seller = await user("seller", "member");
const stranger = await user("stranger", "member");
const adminA = await user("admina", "admin");
const adminB = await user("adminb", "admin");

// Manual wallet: proof, flagged -> two-person approval.
let r = await call("POST", "/deals", { token: buyer.token, body: { sellerId: seller.id, price: { amount: "25.00", currency: "USD" }, paymentMethod: "manual_wallet" } });
check("create deal", r.status === 201 && r.json.data.status === "AWAITING_PAYMENT", r.text);
const deal = r.json.data.id;
check("stranger gets 404", (await call("GET", `/deals/${deal}`, { token: stranger.token })).status === 404);
check("anonymous gets 401", (await call("GET", `/deals/${deal}`)).status === 401);
check("seller cannot pay (403)", (await call("POST", `/deals/${deal}/checkout`, { token: seller.token })).status === 403);
r = await call("PATCH", `/deals/${deal}`, { token: buyer.token, body: { status: "RELEASED" } });
check("mass assignment refused", r.status === 400 && r.json.error.code === "INVALID_INPUT", r.text);
r = await call("POST", `/deals/${deal}/cancel`, { token: buyer.token, body: { expectedVersion: 7 } });
check("stale version 412", r.status === 412 && r.json.error.code === "STALE_VERSION", r.text);
r = await call("POST", `/deals/${deal}/payment-proofs`, { token: buyer.token, body: { txHash: `0x${tag}`, amount: { amount: "20.00", currency: "USD" }, toAddress: "platform-wallet" } });
check("proof submitted", r.status === 201 && r.json.data.deal.status === "PAYMENT_REVIEW" && r.json.data.proof.flagged, r.text);
const proof = r.json.data.proof.id;
r = await call("POST", `/admin/deals/${deal}/payment-proofs/${proof}/approve`, { token: adminA.token });
check("approve needs re-authentication", r.status === 401 && r.json.error.code === "REAUTH_REQUIRED", r.text);
await stepUp(adminA);
r = await call("POST", `/admin/deals/${deal}/payment-proofs/${proof}/approve`, { token: adminA.token });
check("flagged proof is two-person (202)", r.status === 202, r.text);
const approval = r.json.data.id;
r = await call("POST", `/admin/approvals/${approval}/confirm`, { token: adminA.token });
check("same approver refused", r.status === 403 && r.json.error.code === "SAME_APPROVER", r.text);
await stepUp(adminB);
r = await call("POST", `/admin/approvals/${approval}/confirm`, { token: adminB.token });
check("second admin executes (partial)", r.status === 200 && r.json.data.deal.status === "AWAITING_PAYMENT" && r.json.data.deal.amountReceived === "20.00", r.text);

// Sessions: refresh rotation and reuse detection.
r = await call("POST", "/auth/token/refresh", { body: { refreshToken: buyer.refresh } });
check("refresh rotates", r.status === 200, r.text);
const rt2 = r.json.data.refreshToken;
r = await call("POST", "/auth/token/refresh", { body: { refreshToken: buyer.refresh } });
check("reuse refused", r.status === 401 && r.json.error.code === "TOKEN_INVALID", r.text);
r = await call("POST", "/auth/token/refresh", { body: { refreshToken: rt2 } });
check("family revoked after reuse", r.status === 401, r.text);
check("its access token is dead too", (await call("GET", "/deals", { token: buyer.token })).status === 401);
r = await call("POST", "/auth/token", { body: { email: buyer.email, password: "pw-buyer" }, headers: { "x-forwarded-for": "10.9.5.2" } });
buyer.token = r.json.data.accessToken;

// Webhooks: signature, malformed, dead letters.
const hook = async (body, key = "conform-shkeeper-key", ts = Math.floor(Date.now() / 1000)) => {
  const sig = createHmac("sha256", key).update(`${ts}.`).update(body).digest("hex");
  return call("POST", "/hooks/shkeeper", { raw: body, headers: { "content-type": "application/json", "X-Shkeeper-Timestamp": String(ts), "X-Shkeeper-Signature": sig } });
};
r = await hook('{"a":1}', "wrong-key");
check("forged delivery 401", r.status === 401 && r.json.error.code === "SIGNATURE_INVALID", r.text);
r = await hook('{"a":1}');
check("authentic but malformed 400", r.status === 400 && r.json.error.code === "PAYLOAD_MALFORMED", r.text);
r = await hook("not json at all");
check("not JSON 400", r.status === 400, r.text);
r = await call("POST", "/hooks/shkeeper", { raw: '{"a":1}', headers: { "X-Shkeeper-Timestamp": "1", "X-Shkeeper-Signature": "zz" } });
check("short signature 401 (not 500)", r.status === 401, r.text);

if (sim) {
  r = await call("POST", "/deals", { token: buyer.token, body: { sellerId: seller.id, price: { amount: "10.00", currency: "USDT" }, paymentMethod: "shkeeper" } });
  const d2 = r.json.data.id;
  r = await call("POST", `/deals/${d2}/checkout`, { token: buyer.token });
  check("checkout creates an invoice", r.status === 200 && r.json.data.payment.payTo, r.text);
  const paid = await fetch(`${sim}/_conform/pay`, { method: "POST", body: JSON.stringify({ external_id: `inv-${d2}`, amount: "10.00" }) });
  check("simulator paid", paid.ok, await paid.text());
  await new Promise((res) => setTimeout(res, 500));
  r = await call("GET", `/deals/${d2}`, { token: buyer.token });
  check("funded by the signed callback", r.json.data.status === "FUNDED", r.text);
  await call("POST", `/deals/${d2}/ship`, { token: seller.token });
  r = await call("POST", `/deals/${d2}/confirm`, { token: buyer.token });
  check("confirm -> RELEASING", r.json.data.status === "RELEASING" && r.json.data.fee === "0.250000", r.text);
  const calls = await (await fetch(`${sim}/_conform/calls`)).json();
  check("payout asked with the idempotency key", JSON.stringify(calls).includes(`payout-${d2}`));
  r = await call("GET", `/admin/ledger?dealId=${d2}`, { token: adminA.token });
  check("ledger has payment and release", r.status === 200 && r.json.data.map((e) => e.kind).join(",") === "payment,release", r.text);
}

// Socket.IO over a raw WebSocket (the ws package comes with socket.io): auth, watch, targeted emission, revocation.
{
  const { WebSocket } = await import("ws");
  const wsUrl = `${base.replace(/^http/, "ws")}/socket.io/?EIO=4&transport=websocket`;
  const open = (auth) => new Promise((resolve) => {
    const ws = new WebSocket(wsUrl);
    const frames = [];
    ws.on("message", (m) => {
      const t = m.toString();
      if (t === "2") return ws.send("3");
      frames.push(t);
      if (t.startsWith("0")) ws.send(`40/live,${JSON.stringify(auth)}`);
      if (t.startsWith("40/live,") || t.startsWith("44/live,")) resolve({ ws, frames, first: t });
    });
    ws.on("close", () => resolve({ ws, frames, first: "closed" }));
  });
  const wait = (ms) => new Promise((res) => setTimeout(res, ms));
  let c = await open({ accessToken: "nope" });
  check("socket with a bad token gets CONNECT_ERROR", c.first.startsWith("44/live,"), c.first);
  c.ws.close();
  const s1 = await open({ accessToken: seller.token });
  check("socket with a token connects", s1.first.startsWith("40/live,"), s1.first);
  const s2 = await open({ accessToken: stranger.token });
  s2.ws.send(`42/live,1["deal:watch",{"dealId":"${deal}"}]`);
  await wait(200);
  check("stranger's watch acked NOT_FOUND", s2.frames.some((f) => f.includes('"error":"NOT_FOUND"')), s2.frames.join(" | "));
  s2.ws.send('42/live,2["deal:watch",{"dealId":5}]');
  s2.ws.send('42/live,3["whatever",{}]');
  await wait(200);
  check("malformed payloads acked INVALID_INPUT", s2.frames.filter((f) => f.includes("INVALID_INPUT")).length === 2, s2.frames.join(" | "));
  r = await call("POST", "/deals", { token: buyer.token, body: { sellerId: seller.id, price: { amount: "5.00", currency: "USD" }, paymentMethod: "manual_wallet" } });
  await call("POST", `/deals/${r.json.data.id}/cancel`, { token: buyer.token });
  await wait(300);
  check("seller hears deal:changed", s1.frames.some((f) => f.includes("deal:changed") && f.includes("CANCELLED")), s1.frames.join(" | "));
  check("stranger hears nothing", !s2.frames.some((f) => f.includes("deal:changed")), s2.frames.join(" | "));
  for (let i = 0; i < 30; i++) s2.ws.send(`42/live,${100 + i}["deal:watch",{"dealId":"${deal}"}]`);
  await wait(300);
  check("flood gets TOO_MANY_REQUESTS", s2.frames.some((f) => f.includes("TOO_MANY_REQUESTS")), "");
  await call("POST", "/auth/logout", { token: seller.token });
  await wait(500);
  check("logout disconnects the socket", s1.ws.readyState !== 1 || s1.frames.some((f) => f.startsWith("41/live")), s1.frames.join(" | "));
  c = await open({ accessToken: seller.token });
  check("reconnect with the revoked token fails", c.first.startsWith("44/live,"), c.first);
  c.ws.close();
  s2.ws.close();
}

r = await call("GET", "/admin/dead-letters", { token: adminA.token });
check("dead letters listed", r.status === 200 && r.json.data.length >= 3, r.text);
r = await call("GET", "/admin/audit", { token: stranger.token });
check("audit forbidden to members", r.status === 403, r.text);

console.log(failures === 0 ? "smoke: all checks passed" : `smoke: ${failures} failed`);
process.exit(failures === 0 ? 0 : 1);
