// Type-checked by `tsc --noEmit` against the generated declarations: the
// shapes a TypeScript admin console relies on.
import { Engine, evaluate, validatePolicy, version } from "srs-policy";
import type {
  Answer, Decision, Event, Matched, Outcome, Policy, PolicySummary, Provider, Revocation, Rule, Scheduled,
} from "srs-policy";

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
  const outcome: "revoke" | "grace" | "no_action" | "unsupported" = answer.decision.outcome;
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
// A grace period (SPEC §4 step 3a): the policy field, the outcome, what is
// scheduled and the grace-period reason, each as the declarations type them.
const gracePolicy: Policy = { ...policy, grace_seconds: 14_400 };
const timed: Event = { ...event, time: "2026-11-27T10:15:00Z" };
const graceAnswer: Answer = evaluate(gracePolicy, timed);
if (graceAnswer.type === "success" && graceAnswer.decision) {
  const decision: Decision = graceAnswer.decision;
  const scheduled: Scheduled | undefined = decision.scheduled;
  if (scheduled) {
    const due: string = scheduled.due;
    const later: Revocation[] = scheduled.revocations;
    console.log(due, later.map((r) => `${r.provider}:${r.subject}`));
  }
  for (const reason of decision.reasons) {
    const rule: Rule = reason.rule;
    if (rule === "grace-period") {
      for (const m of reason.matched) console.log(graceOf(m));
    }
  }
  console.log(describe(decision.outcome));
}

/** Every outcome, checked exhaustively: a new or renamed one fails `tsc`. */
function describe(outcome: Outcome): string {
  switch (outcome) {
    case "revoke": return "revoked now";
    case "grace": return "revoked when the grace period ends";
    case "no_action": return "nothing to do";
    case "unsupported": return "cannot revoke here";
    default: {
      const unknown: never = outcome;
      return unknown;
    }
  }
}

/** The grace-period shape of `matched`, narrowed from the union. */
function graceOf(m: Matched): { grace_seconds: number; due: string } | undefined {
  if ("grace_seconds" in m) {
    const seconds: number = m.grace_seconds;
    const due: string = m.due;
    return { grace_seconds: seconds, due };
  }
  return undefined;
}

const v: string = version();
console.log(again.type, checked.type, v);
