// Passkeys (SES-8) with @simplewebauthn/server: options, then verify, for registration and for sign-in. Challenges
// are ours: single-use (consumed by the first response, whatever its outcome) and valid for 5 minutes; the sign
// counter must grow when either side counts (SimpleWebAuthn checks it); a replayed assertion, another credential's
// signature and a counter that goes backwards are refused.

import {
  generateAuthenticationOptions,
  generateRegistrationOptions,
  verifyAuthenticationResponse,
  verifyRegistrationResponse,
} from "@simplewebauthn/server";
import type { AuthenticationResponseJSON, RegistrationResponseJSON, AuthenticatorTransportFuture } from "@simplewebauthn/server";
import { Config } from "./config";
import { Refusal, invalid } from "./errors";
import { isObject, JsonObject } from "./util";

export const CHALLENGE_TTL_SECONDS = 300;

interface ChallengeRec {
  purpose: { registration: number } | "sign_in";
  expiresAt: number;
  consumed: boolean;
}

interface CredentialRec {
  user: number;
  publicKey: Uint8Array;
  counter: number;
  transports: AuthenticatorTransportFuture[] | undefined;
}

function refusedCredentials(message: string): Refusal {
  // On the wire: 401 BAD_CREDENTIALS with the reason.
  return new Refusal("invalid_credentials", message);
}

/** The parts of clientDataJSON we check before SimpleWebAuthn does the rest. */
function clientData(response: unknown): { challenge: string; origin: string } {
  if (!isObject(response) || !isObject(response["response"])) throw invalid("response.clientDataJSON is missing");
  const raw = response["response"]["clientDataJSON"];
  if (typeof raw !== "string") throw invalid("response.clientDataJSON is missing or not base64url");
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(raw, "base64url").toString("utf8"));
  } catch {
    throw invalid("clientDataJSON is not JSON");
  }
  if (!isObject(parsed) || typeof parsed["challenge"] !== "string" || typeof parsed["origin"] !== "string") {
    throw invalid("clientDataJSON has no challenge or origin");
  }
  return { challenge: parsed["challenge"], origin: parsed["origin"] };
}

export class Passkeys {
  private readonly challenges = new Map<string, ChallengeRec>();
  private readonly credentials = new Map<string, CredentialRec>();

  constructor(private readonly cfg: Config) {}

  private originOk(origin: string): boolean {
    if (this.cfg.passkeyOrigins) return this.cfg.passkeyOrigins.includes(origin);
    const m = /^https?:\/\/([^/:]+)/.exec(origin);
    const host = m?.[1] ?? "";
    return host === this.cfg.passkeyRpId || host.endsWith(`.${this.cfg.passkeyRpId}`);
  }

  /** Consumes the challenge the response names: used once, whatever the outcome. */
  private consume(challenge: string, now: number): ChallengeRec {
    const rec = this.challenges.get(challenge);
    if (!rec) throw refusedCredentials("unknown challenge");
    if (rec.consumed) throw refusedCredentials("challenge already used");
    rec.consumed = true;
    if (now >= rec.expiresAt) throw refusedCredentials("challenge expired");
    return rec;
  }

  async registrationOptions(user: { id: number; publicId: string; email: string }, now: number): Promise<JsonObject> {
    const options = await generateRegistrationOptions({
      rpName: "conform express target",
      rpID: this.cfg.passkeyRpId,
      userName: user.email,
      userID: new TextEncoder().encode(user.publicId),
      attestationType: "none",
      timeout: CHALLENGE_TTL_SECONDS * 1000,
      excludeCredentials: [...this.credentials.entries()]
        .filter(([, c]) => c.user === user.id)
        .map(([id, c]) => (c.transports ? { id, transports: c.transports } : { id })),
      authenticatorSelection: { residentKey: "preferred", userVerification: "preferred" },
      supportedAlgorithmIDs: [-7],
    });
    this.challenges.set(options.challenge, { purpose: { registration: user.id }, expiresAt: now + CHALLENGE_TTL_SECONDS, consumed: false });
    return options as unknown as JsonObject;
  }

  async register(user: number, response: unknown, now: number): Promise<string> {
    const data = clientData(response);
    const rec = this.consume(data.challenge, now);
    if (rec.purpose === "sign_in") throw refusedCredentials("challenge issued for another ceremony");
    if (rec.purpose.registration !== user) throw refusedCredentials("the challenge was issued to another account");
    if (!this.originOk(data.origin)) throw refusedCredentials("the origin is not this relying party's");
    let verified;
    try {
      verified = await verifyRegistrationResponse({
        response: response as RegistrationResponseJSON,
        expectedChallenge: data.challenge,
        expectedOrigin: data.origin,
        expectedRPID: this.cfg.passkeyRpId,
        requireUserVerification: false,
      });
    } catch (e) {
      throw invalid(`registration does not verify: ${(e as Error).message}`);
    }
    if (!verified.verified) throw invalid("registration does not verify");
    const credential = verified.registrationInfo.credential;
    if (this.credentials.has(credential.id)) throw invalid("this credential is already registered");
    this.credentials.set(credential.id, {
      user,
      publicKey: credential.publicKey,
      counter: credential.counter,
      transports: credential.transports,
    });
    return credential.id;
  }

  async authenticationOptions(now: number): Promise<JsonObject> {
    const options = await generateAuthenticationOptions({
      rpID: this.cfg.passkeyRpId,
      timeout: CHALLENGE_TTL_SECONDS * 1000,
      userVerification: "preferred",
      allowCredentials: [],
    });
    this.challenges.set(options.challenge, { purpose: "sign_in", expiresAt: now + CHALLENGE_TTL_SECONDS, consumed: false });
    return options as unknown as JsonObject;
  }

  /** Verifies an assertion; the account it proves. */
  async assert(response: unknown, now: number): Promise<number> {
    const data = clientData(response);
    const rec = this.consume(data.challenge, now);
    if (rec.purpose !== "sign_in") throw refusedCredentials("challenge issued for another ceremony");
    if (!this.originOk(data.origin)) throw refusedCredentials("the origin is not this relying party's");
    const id = isObject(response) && typeof response["id"] === "string" ? response["id"] : null;
    const credential = id === null ? undefined : this.credentials.get(id);
    if (!credential || id === null) throw refusedCredentials("unknown credential");
    let verified;
    try {
      verified = await verifyAuthenticationResponse({
        response: response as AuthenticationResponseJSON,
        expectedChallenge: data.challenge,
        expectedOrigin: data.origin,
        expectedRPID: this.cfg.passkeyRpId,
        credential: { id, publicKey: credential.publicKey as Uint8Array<ArrayBuffer>, counter: credential.counter, transports: credential.transports },
        requireUserVerification: false,
      });
    } catch (e) {
      throw refusedCredentials(`assertion does not verify: ${(e as Error).message}`);
    }
    if (!verified.verified) throw refusedCredentials("assertion does not verify");
    credential.counter = verified.authenticationInfo.newCounter;
    return credential.user;
  }
}
