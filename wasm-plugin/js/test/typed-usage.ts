// Type-checked by `tsc --noEmit` against the generated declarations: the
// shapes a TypeScript admin console relies on.
import { Engine, evaluate, validatePolicy, version } from "srs-policy";
import type { Answer, Event, Policy, PolicySummary, Provider, Revocation } from "srs-policy";

const policy: Policy = {
  uem: "epmm",
  deployment: "access",
  providers: ["office365", "google_workspace"],
  mode: "report_only",
  actions: { "Lock Down": "blocking" },
  compliance_policies: [{ id: "jailbreak", actions: ["Block", { alert: true, quarantine: true }] }],
};
const event: Event = {
  id: "evt-1",
  device: { id: "dev-9", state: "active" },
  user: { upn: "alice@example.com" },
  compliance: { compliant: false, violations: [{ policy: "jailbreak" }] },
};

const answer: Answer = evaluate(policy, event);
if (answer.type === "success" && answer.decision) {
  const revoked: Revocation[] = answer.decision.revocations;
  const outcome: "revoke" | "no_action" | "unsupported" = answer.decision.outcome;
  console.log(revoked.length, outcome, answer.decision.reasons.map((r) => r.rule));
} else if (answer.type === "failure") {
  console.log(answer.errors.map((e) => `${e.code} at ${e.path}`));
}
const engine = new Engine(policy);
const again: Answer = engine.evaluate(event);
const checked: Answer = validatePolicy(policy);
if (checked.type === "success" && checked.policy) {
  const summary: PolicySummary = checked.policy;
  const providers: Provider[] = summary.providers;
  const mode: "enforce" | "report_only" = summary.mode;
  const grace: number = summary.grace_seconds;
  console.log(providers, mode, grace);
}
const v: string = version();
console.log(again.type, checked.type, v);
