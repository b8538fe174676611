// Shared by the Node and browser tests: the vector files, the native
// answers (written by `cargo run -p srs-conformance --bin native-answers`)
// and the policy summary case.
import { readFileSync, readdirSync } from "node:fs";

export const root = new URL("../../../", import.meta.url);

export function loadVectors() {
  const dir = new URL("tests/vectors/", root);
  const names = readdirSync(dir).filter((n) => n.endsWith(".json")).sort();
  return names.map((name) => ({ name, ...JSON.parse(readFileSync(new URL(name, dir), "utf8")) }));
}

export function loadNativeAnswers() {
  const path = process.env.SRS_NATIVE_ANSWERS ?? new URL("target/native-answers.json", root);
  return JSON.parse(readFileSync(path, "utf8"));
}

// A policy with providers in a non-default order, and the answer
// `validatePolicy` (like `srs_set_policy`) gives for it, as native
// policy-core writes it (policy-core/tests/policy_summary.rs).
export const summaryCase = {
  policy: { uem: "neurons_mdm", deployment: "access", providers: ["google_workspace", "office365"], mode: "report_only" },
  answer: '{"type":"success","policy":{"providers":["google_workspace","office365"],"mode":"report_only","grace_seconds":0},"warnings":[]}',
};
