// Shared by the Node and browser tests: the vector files and the native
// answers (written by `cargo run -p srs-conformance --bin native-answers`).
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
