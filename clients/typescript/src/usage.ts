// How a frontend uses Gatehouse through the client generated from /openapi.json
// (src/generated/schema.d.ts, made by scripts/contract with openapi-typescript). It is
// type-checked, never run: a change to the contract that breaks these calls breaks the build.
import createClient from "openapi-fetch";
import type { components, paths } from "./generated/schema";

type ErrorBody = components["schemas"]["ErrorBody"];
type Session = components["schemas"]["LoginResponse"];
type Proof = components["schemas"]["ProofInput"];

export const gatehouse = createClient<paths>({ baseUrl: "https://gatehouse.example.com" });

function explain(error: ErrorBody): Error {
  const { code, message, field, retry_after } = error.error;
  const where = field ? ` (${field})` : "";
  const wait = retry_after != null ? `; retry in ${retry_after} s` : "";
  return new Error(`${code}: ${message}${where}${wait}`);
}

/** Sign-up, then the email's verification code. */
export async function signUp(email: string, password: string, readCode: () => Promise<string>) {
  const { data, error } = await gatehouse.POST("/v1/accounts", {
    body: { email, password, device_id: "browser-1" },
  });
  if (error) throw explain(error);
  const accountId: string = data.account_id;
  const code = await readCode();
  const verified = await gatehouse.POST("/v1/verify", {
    body: { flow_id: data.verification_flow_id, code },
  });
  if (verified.error) throw explain(verified.error);
  return accountId;
}

/** Sign-in: a session at once, or a second-factor challenge answered with a TOTP code. */
export async function signIn(
  identifier: string,
  password: string,
  deviceToken: string | undefined,
  totp: () => Promise<string>,
): Promise<Session> {
  const { data, error } = await gatehouse.POST("/v1/login", {
    body: { identifier, password, device_token: deviceToken },
  });
  if (error) throw explain(error);
  if (!("mfa_required" in data)) return data;
  if (!data.methods.includes("totp")) throw new Error("no TOTP on this account");
  const answer = await gatehouse.POST("/v1/login/mfa", {
    body: { challenge_id: data.challenge_id, method: "totp", code: await totp() },
  });
  if (answer.error) throw explain(answer.error);
  const session: Session = answer.data;
  return session;
}

/** Forgot password, then the reset with the emailed code and a current second factor. */
export async function resetPassword(
  email: string,
  readCode: () => Promise<string>,
  newPassword: string,
  totpCode: string,
): Promise<void> {
  const started = await gatehouse.POST("/v1/password/forgot", {
    body: { identifier: email, channel: "email" },
  });
  if (started.error) throw explain(started.error);
  const flowId: string = started.data.flow_id;
  const proof: Proof = { method: "totp", code: totpCode };
  const reset = await gatehouse.POST("/v1/password/reset", {
    body: { flow_id: flowId, code: await readCode(), new_password: newPassword, proof },
  });
  if (reset.error) {
    if (reset.error.error.next_action === "lost_2fa") {
      throw new Error("the second factor is lost: start POST /v1/recovery/lost-2fa");
    }
    throw explain(reset.error);
  }
}

/** Who is signed in, with the session's bearer. */
export async function whoAmI(session: Session) {
  const { data, error } = await gatehouse.GET("/v1/me", {
    headers: { Authorization: `Bearer ${session.session_token}` },
  });
  if (error) throw explain(error);
  return data;
}
