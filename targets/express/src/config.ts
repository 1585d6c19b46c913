// Configuration from the environment. Defaults are SPEC's, and the provider credentials of conform's simulators.

import { Provider, parseProvider } from "./domain/ledger";

export interface Config {
  port: number;
  host: string;
  /** CONFORM_TEST_MODE=1: the /api/v1/testing/* routes exist (SPEC §11); 404 otherwise. */
  testMode: boolean;
  /** PASSKEYS_ENABLED=1: WebAuthn routes on (SES-8); otherwise 404 PASSKEYS_OFF. */
  passkeysEnabled: boolean;
  passkeyRpId: string;
  passkeyOrigins: string[] | null;
  shkeeperUrl: string | null;
  shkeeperApiKey: string;
  shkeeperPayoutUser: string;
  shkeeperPayoutPassword: string;
  requestNetworkUrl: string | null;
  requestNetworkApiKey: string;
  requestNetworkWebhookSecret: string;
  standardWebhookSecrets: [string, string][];
  secretOverlapSeconds: number;
  feeBps: bigint;
  highRiskThresholdMajor: bigint;
  paymentDeadlineSeconds: number;
  autoReleaseSeconds: number;
  stuckPayoutSeconds: number;
  platformAddress: string;
  disabledProviders: Provider[];
  providerTimeoutMs: number;
  publicUrl: string | null;
  bodyLimitBytes: number;
  /** The per-client sign-in limit keys on the first X-Forwarded-For address (behind a proxy, or a harness). */
  trustForwardedFor: boolean;
  /** The Secure attribute on session cookies (off only for plain-HTTP test deployments). */
  secureCookies: boolean;
  accessLog: boolean;
  /** IDLE_EXIT_SECONDS > 0: exit after that long without a request (see NOTES.md: a harness workaround). */
  idleExitSeconds: number;
}

function env(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === "" ? undefined : v;
}

function flag(name: string, fallback: boolean): boolean {
  const v = env(name);
  if (v === undefined) return fallback;
  return ["1", "true", "yes", "on"].includes(v.toLowerCase());
}

function int(name: string, fallback: number): number {
  const v = env(name);
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < 0) throw new Error(`${name} must be a non-negative integer, not ${JSON.stringify(v)}`);
  return n;
}

export function loadConfig(): Config {
  const testMode = flag("CONFORM_TEST_MODE", false);
  const disabled = (env("DISABLED_PROVIDERS") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "")
    .map((s) => {
      const p = parseProvider(s);
      if (!p) throw new Error(`DISABLED_PROVIDERS: unknown provider ${JSON.stringify(s)}`);
      return p;
    });
  return {
    port: int("PORT", 3000),
    host: env("HOST") ?? "127.0.0.1",
    testMode,
    passkeysEnabled: flag("PASSKEYS_ENABLED", false),
    passkeyRpId: env("PASSKEY_RP_ID") ?? "localhost",
    passkeyOrigins: env("PASSKEY_ORIGINS")?.split(",").map((s) => s.trim()) ?? null,
    shkeeperUrl: env("SHKEEPER_URL") ?? null,
    shkeeperApiKey: env("SHKEEPER_API_KEY") ?? "conform-shkeeper-key",
    shkeeperPayoutUser: env("SHKEEPER_PAYOUT_USER") ?? "shkeeper",
    shkeeperPayoutPassword: env("SHKEEPER_PAYOUT_PASSWORD") ?? "shkeeper",
    requestNetworkUrl: env("REQUEST_NETWORK_URL") ?? null,
    requestNetworkApiKey: env("REQUEST_NETWORK_API_KEY") ?? "conform-rn-key",
    requestNetworkWebhookSecret: env("REQUEST_NETWORK_WEBHOOK_SECRET") ?? "conform-rn-webhook-secret",
    standardWebhookSecrets: [["standard", env("STANDARD_WEBHOOK_SECRET") ?? "whsec_Y29uZm9ybS1zdGFuZGFyZC13ZWJob29rLXNlY3JldA=="]],
    secretOverlapSeconds: int("WEBHOOK_SECRET_OVERLAP_SECONDS", 0),
    feeBps: BigInt(int("FEE_BPS", 250)),
    highRiskThresholdMajor: BigInt(int("HIGH_RISK_THRESHOLD", 10_000)),
    paymentDeadlineSeconds: int("PAYMENT_DEADLINE_SECONDS", 72 * 3600),
    autoReleaseSeconds: int("AUTO_RELEASE_SECONDS", 14 * 24 * 3600),
    stuckPayoutSeconds: int("STUCK_PAYOUT_SECONDS", 3600),
    platformAddress: env("PLATFORM_ADDRESS") ?? "platform-wallet",
    disabledProviders: disabled,
    providerTimeoutMs: int("PROVIDER_TIMEOUT_MS", 5000),
    publicUrl: env("PUBLIC_URL") ?? null,
    bodyLimitBytes: int("BODY_LIMIT_BYTES", 64 * 1024),
    trustForwardedFor: flag("TRUST_FORWARDED_FOR", true),
    secureCookies: flag("SECURE_COOKIES", !testMode),
    accessLog: flag("ACCESS_LOG", false),
    idleExitSeconds: int("IDLE_EXIT_SECONDS", 0),
  };
}
