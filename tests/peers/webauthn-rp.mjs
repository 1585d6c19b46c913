// A real WebAuthn relying party for conform's passkey tests (tests/it/passkey.rs), on @simplewebauthn/server 13.
//
// Listens on 127.0.0.1, port 0; prints the port on stdout as its first line. Exits when stdin closes, so it
// never outlives the test that spawned it. Origin `http://localhost:PORT`, rpID `localhost`.
//
// Routes (JSON bodies; `username` stands in for the session a real backend keeps):
// - POST /register/options {username}            → PublicKeyCredentialCreationOptionsJSON
// - POST /register/verify  {username, response}  → {verified, credentialId} | 400 {verified:false, error}
// - POST /login/options    {username}            → PublicKeyCredentialRequestOptionsJSON
// - POST /login/verify     {username, response}  → {verified, newCounter}   | 400 {verified:false, error}
// Challenges are stored server-side per username and per ceremony, and removed on the first verify attempt
// (used once, whatever the outcome). A credential is looked up by its id and must belong to the user; its sign
// counter is stored and SimpleWebAuthn refuses a counter that does not go up (unless both are 0).
import { createServer } from "node:http";
import {
  generateRegistrationOptions,
  verifyRegistrationResponse,
  generateAuthenticationOptions,
  verifyAuthenticationResponse,
} from "@simplewebauthn/server";

const rpID = "localhost";
let origin = "";

/** username → {id: Uint8Array, credentials: [{id, publicKey, counter, transports}]} */
const users = new Map();
/** `${ceremony}:${username}` → challenge */
const challenges = new Map();

function user(username) {
  let u = users.get(username);
  if (!u) {
    u = { id: crypto.getRandomValues(new Uint8Array(16)), credentials: [] };
    users.set(username, u);
  }
  return u;
}

function takeChallenge(key) {
  const c = challenges.get(key);
  challenges.delete(key);
  return c;
}

const routes = {
  async "/register/options"({ username }) {
    const u = user(username);
    const options = await generateRegistrationOptions({
      rpName: "conform test RP",
      rpID,
      userName: username,
      userID: u.id,
      attestationType: "none",
      excludeCredentials: u.credentials.map((c) => ({ id: c.id, transports: c.transports })),
    });
    challenges.set(`reg:${username}`, options.challenge);
    return [200, options];
  },
  async "/register/verify"({ username, response }) {
    const expectedChallenge = takeChallenge(`reg:${username}`);
    if (!expectedChallenge) return [400, { verified: false, error: "no pending registration challenge" }];
    const v = await verifyRegistrationResponse({ response, expectedChallenge, expectedOrigin: origin, expectedRPID: rpID });
    if (!v.verified || !v.registrationInfo) return [400, { verified: false, error: "registration not verified" }];
    const { credential } = v.registrationInfo;
    user(username).credentials.push({
      id: credential.id,
      publicKey: credential.publicKey,
      counter: credential.counter,
      transports: credential.transports,
    });
    return [200, { verified: true, credentialId: credential.id }];
  },
  async "/login/options"({ username }) {
    const u = user(username);
    const options = await generateAuthenticationOptions({
      rpID,
      allowCredentials: u.credentials.map((c) => ({ id: c.id, transports: c.transports })),
    });
    challenges.set(`auth:${username}`, options.challenge);
    return [200, options];
  },
  async "/login/verify"({ username, response }) {
    const expectedChallenge = takeChallenge(`auth:${username}`);
    if (!expectedChallenge) return [400, { verified: false, error: "no pending authentication challenge" }];
    const cred = user(username).credentials.find((c) => c.id === response?.id);
    if (!cred) return [400, { verified: false, error: "unknown credential" }];
    const v = await verifyAuthenticationResponse({
      response,
      expectedChallenge,
      expectedOrigin: origin,
      expectedRPID: rpID,
      credential: cred,
    });
    if (!v.verified) return [400, { verified: false, error: "assertion not verified" }];
    cred.counter = v.authenticationInfo.newCounter;
    return [200, { verified: true, newCounter: cred.counter }];
  },
};

const server = createServer((req, res) => {
  let body = "";
  req.on("data", (chunk) => (body += chunk));
  req.on("end", async () => {
    const send = (status, value) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(value));
    };
    const route = req.method === "POST" ? routes[req.url] : undefined;
    if (!route) return send(404, { error: "not found" });
    try {
      const [status, value] = await route(JSON.parse(body || "{}"));
      send(status, value);
    } catch (e) {
      send(400, { verified: false, error: String(e?.message ?? e) });
    }
  });
});

server.listen(0, "127.0.0.1", () => {
  const { port } = server.address();
  origin = `http://localhost:${port}`;
  console.log(port);
});

process.stdin.on("end", () => process.exit(0));
process.stdin.resume();
