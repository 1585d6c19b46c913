// Errors. Internally a refusal has a canonical kind; on the wire it becomes this backend's own error body,
// {"error": {"code": "...", "message": "..."}}, with its own code names (listed in README.md).

export type RefusalKind =
  | "unauthenticated"
  | "invalid_grant"
  | "invalid_credentials"
  | "step_up_required"
  | "forbidden"
  | "same_approver"
  | "not_found"
  | "passkeys_disabled"
  | "invalid_transition"
  | "version_mismatch"
  | "validation_failed"
  | "provider_disabled"
  | "rate_limited"
  | "provider_unavailable"
  | "invalid_signature"
  | "malformed"
  | "csrf_failed"
  | "payload_too_large"
  | "internal";

const WIRE: Record<RefusalKind, { status: number; code: string; message: string }> = {
  unauthenticated: { status: 401, code: "UNAUTHORIZED", message: "sign in first" },
  invalid_grant: { status: 401, code: "TOKEN_INVALID", message: "the refresh token is invalid, expired or already used" },
  invalid_credentials: { status: 401, code: "BAD_CREDENTIALS", message: "invalid credentials" },
  step_up_required: { status: 401, code: "REAUTH_REQUIRED", message: "re-authenticate (password and one-time code) within the last 5 minutes" },
  forbidden: { status: 403, code: "FORBIDDEN", message: "not allowed" },
  same_approver: { status: 403, code: "SAME_APPROVER", message: "the second approval must come from a different admin" },
  not_found: { status: 404, code: "NOT_FOUND", message: "not found" },
  passkeys_disabled: { status: 404, code: "PASSKEYS_OFF", message: "passkeys are switched off" },
  invalid_transition: { status: 409, code: "STATE_CONFLICT", message: "the deal's state does not allow this" },
  version_mismatch: { status: 412, code: "STALE_VERSION", message: "the deal changed since you read it" },
  validation_failed: { status: 400, code: "INVALID_INPUT", message: "invalid input" },
  provider_disabled: { status: 422, code: "PROVIDER_DISABLED", message: "this payment method is switched off" },
  rate_limited: { status: 429, code: "TOO_MANY_REQUESTS", message: "too many attempts, try again later" },
  provider_unavailable: { status: 503, code: "PROVIDER_UNAVAILABLE", message: "the payment provider is unavailable" },
  invalid_signature: { status: 401, code: "SIGNATURE_INVALID", message: "the delivery does not authenticate" },
  malformed: { status: 400, code: "PAYLOAD_MALFORMED", message: "the delivery body cannot be parsed" },
  csrf_failed: { status: 403, code: "CSRF_FAILED", message: "missing or wrong X-CSRF-Token header" },
  payload_too_large: { status: 413, code: "PAYLOAD_TOO_LARGE", message: "the request body is too large" },
  internal: { status: 500, code: "INTERNAL", message: "internal error" },
};

/** A refusal: thrown anywhere, answered by the error handler. */
export class Refusal extends Error {
  readonly kind: RefusalKind;
  readonly detail: string | undefined;
  constructor(kind: RefusalKind, detail?: string) {
    super(detail ?? WIRE[kind].message);
    this.kind = kind;
    this.detail = detail;
  }
  get status(): number {
    return WIRE[this.kind].status;
  }
  get code(): string {
    return WIRE[this.kind].code;
  }
  body(): { error: { code: string; message: string } } {
    return { error: { code: this.code, message: this.message } };
  }
}

export function invalid(message: string): Refusal {
  return new Refusal("validation_failed", message);
}

export function wireCode(kind: RefusalKind): string {
  return WIRE[kind].code;
}
