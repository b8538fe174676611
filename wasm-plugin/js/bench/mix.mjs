// The shared benchmark mix for the Node benchmarks: benches/data/policy.json and
// benches/data/events.jsonl, pre-parsed to objects as a console would pass them.
import { readFileSync, existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { createRequire } from "node:module";

export const root = new URL("../../../", import.meta.url);
// The package as its users load it (the same self-reference the tests use).
export const srs = createRequire(import.meta.url)("srs-policy");

export function loadMix() {
  const dir = new URL("benches/data/", root);
  const policyFile = new URL("policy.json", dir);
  const eventsFile = new URL("events.jsonl", dir);
  for (const file of [policyFile, eventsFile]) {
    if (!existsSync(file)) {
      console.error(`benchmark data missing: ${fileURLToPath(file)} (the shared mix in benches/data/)`);
      process.exit(2);
    }
  }
  const policy = JSON.parse(readFileSync(policyFile, "utf8"));
  const events = readFileSync(eventsFile, "utf8").split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
  if (events.length === 0) {
    console.error(`no events in ${fileURLToPath(eventsFile)}`);
    process.exit(2);
  }
  return { policy, events };
}
