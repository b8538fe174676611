// The playground: evaluates the policy and event in the page with the web
// build of the package, on every edit.
import init, { evaluate, version } from "../wasm-plugin/js/web/srs_policy.js";
import * as srs from "../wasm-plugin/js/web/srs_policy.js";
import {
  duration, fillErrors, fillRevocations, localTime, outcomeLabel, reasonItems, warningItems,
} from "./shared/render.js";

const EXAMPLES = [
  ["jailbroken-iphone", "Jailbroken iPhone (Block)"],
  ["os-too-old", "OS too old (Send Alert)"],
  ["retired-laptop", "Retired laptop"],
  ["passcode-quarantine-tier", "Passcode policy, EPMM tier with quarantine"],
  ["breakglass-admin", "Quarantined device of an exempt admin"],
  ["compliant-phone", "Compliant phone"],
];

// Policies for the editor: the shipped example, and the example with a grace
// period (SPEC §4 step 3a), under which a blocking action is revoked later.
const GRACE_SECONDS = 14_400;
const PRESETS = [
  ["example", "Example policy"],
  ["grace", "Example with a 4-hour grace period"],
];

const $ = (id) => document.getElementById(id);
const presets = {};

async function fetchText(path) {
  const response = await fetch(path);
  if (!response.ok) throw new Error(`${path}: HTTP ${response.status}`);
  return response.text();
}

/** Parses one editor's JSON, or gives a failure naming the editor. */
function parse(text, path) {
  try {
    return { value: JSON.parse(text) };
  } catch (e) {
    return { error: { code: "malformed-json", path, message: `input is not valid JSON: ${e.message}` } };
  }
}

function setValue(id, text, className) {
  $(id).textContent = text;
  $(id).className = `value ${className}`;
}

function render(answer) {
  $("raw").textContent = JSON.stringify(answer, null, 2);
  const failed = answer.type === "failure";
  $("errors-panel").hidden = !failed;
  $("revocations-panel").hidden = failed;
  $("scheduled-panel").hidden = failed || !answer.decision?.scheduled;
  $("reasons-panel").hidden = failed;
  const warnings = answer.warnings ?? [];
  $("warnings-panel").hidden = warnings.length === 0;
  $("warnings").replaceChildren(...warningItems(warnings));
  if (failed) {
    setValue("outcome", "invalid input", "failure");
    setValue("access", "—", "");
    setValue("enforced", "—", "");
    fillErrors($("errors"), answer.errors);
    return;
  }
  const d = answer.decision;
  setValue("outcome", outcomeLabel(d.outcome), d.outcome);
  setValue("access", d.access, d.access);
  setValue("enforced", d.enforced ? "enforce" : "report only", d.enforced ? "enforce" : "report");
  fillRevocations($("revocations"), d.revocations);
  $("revocations").hidden = d.revocations.length === 0;
  $("no-revocations").hidden = d.revocations.length > 0;
  $("no-revocations").textContent = d.scheduled
    ? "No sessions are revoked now: they are scheduled below."
    : "No sessions are revoked now.";
  if (d.scheduled) {
    const { due, revocations } = d.scheduled;
    $("due").textContent = due;
    $("due").dateTime = due;
    $("due-local").textContent = localTime(due);
    const grace = d.reasons.find((r) => r.rule === "grace-period")?.matched.find((m) => "grace_seconds" in m);
    $("grace-length").textContent = grace
      ? `${duration(grace.grace_seconds)} (${grace.grace_seconds} s) after the event's time`
      : "—";
    fillRevocations($("scheduled"), revocations);
  }
  $("reasons").replaceChildren(...reasonItems(d.reasons));
}

function update() {
  const policy = parse($("policy").value, "policy");
  const event = parse($("event").value, "event");
  const errors = [policy.error, event.error].filter(Boolean);
  render(errors.length ? { type: "failure", errors } : evaluate(policy.value, event.value));
}

async function loadExample(name) {
  $("event").value = await fetchText(`../examples/events/${name}.json`);
  update();
}

/** The policy text with `grace_seconds` added as its last field, in the file's layout. */
function withGrace(text, seconds) {
  const added = text.replace(/\n}\s*$/, `,\n  "grace_seconds": ${seconds}\n}\n`);
  return added !== text ? added : `${JSON.stringify({ ...JSON.parse(text), grace_seconds: seconds }, null, 2)}\n`;
}

async function main() {
  await init();
  window.srs = srs; // for the browser tests and the curious
  $("version").textContent = `v${version()}`;
  for (const [name, label] of EXAMPLES) $("example").append(new Option(label, name));
  presets.example = await fetchText("../examples/policy.json");
  presets.grace = withGrace(presets.example, GRACE_SECONDS);
  for (const [name, label] of PRESETS) $("preset").append(new Option(label, name));
  $("policy").value = presets.example;
  let timer;
  const onInput = () => { clearTimeout(timer); timer = setTimeout(update, 120); };
  $("policy").addEventListener("input", onInput);
  $("event").addEventListener("input", onInput);
  $("example").addEventListener("change", () => loadExample($("example").value));
  $("preset").addEventListener("change", () => { $("policy").value = presets[$("preset").value]; update(); });
  $("reset-policy").addEventListener("click", () => {
    $("preset").value = "example";
    $("policy").value = presets.example;
    update();
  });
  await loadExample(EXAMPLES[0][0]);
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  document.body.dataset.ready = "error";
  setValue("outcome", `failed to load: ${e.message}`, "failure");
});
