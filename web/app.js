// The playground: evaluates the policy and event in the page with the web
// build of the package, on every edit.
import init, { evaluate, version } from "../wasm-plugin/js/web/srs_policy.js";
import * as srs from "../wasm-plugin/js/web/srs_policy.js";

const EXAMPLES = [
  ["jailbroken-iphone", "Jailbroken iPhone (Block)"],
  ["os-too-old", "OS too old (Send Alert)"],
  ["retired-laptop", "Retired laptop"],
  ["passcode-quarantine-tier", "Passcode policy, EPMM tier with quarantine"],
  ["breakglass-admin", "Quarantined device of an exempt admin"],
  ["compliant-phone", "Compliant phone"],
];

const $ = (id) => document.getElementById(id);
let examplePolicy = "";

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

function cell(row, text, className) {
  const td = row.insertCell();
  td.textContent = text;
  if (className) td.className = className;
  return td;
}

function setValue(id, text, className) {
  $(id).textContent = text;
  $(id).className = `value ${className}`;
}

function describeMatched(m) {
  if ("policy" in m) {
    const action = typeof m.action === "string" ? m.action : `tier ${JSON.stringify(m.action)}`;
    return `policy ${m.policy}: ${action}`;
  }
  if ("state" in m) return `device state ${m.state}`;
  if ("user" in m) return `user ${m.user}`;
  if ("deployment" in m) return `deployment ${m.deployment}`;
  return JSON.stringify(m);
}

function render(answer) {
  $("raw").textContent = JSON.stringify(answer, null, 2);
  const failed = answer.type === "failure";
  $("errors-panel").hidden = !failed;
  $("revocations-panel").hidden = failed;
  $("reasons-panel").hidden = failed;
  const errors = $("errors").tBodies[0];
  errors.replaceChildren();
  const warnings = answer.warnings ?? [];
  $("warnings-panel").hidden = warnings.length === 0;
  $("warnings").replaceChildren(...warnings.map((w) => {
    const li = document.createElement("li");
    li.innerHTML = `<span class="path"></span> — <span class="msg"></span>`;
    li.querySelector(".path").textContent = w.path;
    li.querySelector(".msg").textContent = w.message;
    return li;
  }));
  if (failed) {
    setValue("outcome", "invalid input", "failure");
    setValue("access", "—", "");
    setValue("enforced", "—", "");
    for (const e of answer.errors) {
      const row = errors.insertRow();
      cell(row, "").append(Object.assign(document.createElement("span"), { className: "code", textContent: e.code }));
      cell(row, e.path || "(whole input)", "path");
      cell(row, e.message);
    }
    return;
  }
  const d = answer.decision;
  setValue("outcome", d.outcome.replace("_", " "), d.outcome);
  setValue("access", d.access, d.access);
  setValue("enforced", d.enforced ? "enforce" : "report only", d.enforced ? "enforce" : "report");
  const revocations = $("revocations").tBodies[0];
  revocations.replaceChildren();
  for (const r of d.revocations) {
    const row = revocations.insertRow();
    cell(row, r.provider === "office365" ? "Office 365" : "Google Workspace");
    cell(row, r.subject, "path");
  }
  $("revocations").hidden = d.revocations.length === 0;
  $("no-revocations").hidden = d.revocations.length > 0;
  $("reasons").replaceChildren(...d.reasons.map((r) => {
    const li = document.createElement("li");
    li.dataset.rule = r.rule;
    li.append(Object.assign(document.createElement("span"), { className: "rule", textContent: r.rule }), r.message);
    const matched = document.createElement("ul");
    matched.className = "matched";
    matched.append(...r.matched.map((m) => Object.assign(document.createElement("li"), { textContent: describeMatched(m) })));
    li.append(matched);
    return li;
  }));
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

async function main() {
  await init();
  window.srs = srs; // for the browser tests and the curious
  $("version").textContent = `v${version()}`;
  for (const [name, label] of EXAMPLES) $("example").append(new Option(label, name));
  examplePolicy = await fetchText("../examples/policy.json");
  $("policy").value = examplePolicy;
  let timer;
  const onInput = () => { clearTimeout(timer); timer = setTimeout(update, 120); };
  $("policy").addEventListener("input", onInput);
  $("event").addEventListener("input", onInput);
  $("example").addEventListener("change", () => loadExample($("example").value));
  $("reset-policy").addEventListener("click", () => { $("policy").value = examplePolicy; update(); });
  await loadExample(EXAMPLES[0][0]);
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  document.body.dataset.ready = "error";
  setValue("outcome", `failed to load: ${e.message}`, "failure");
});
