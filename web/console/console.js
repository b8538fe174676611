// The admin console: reads `srs serve`'s admin API with the admin token
// (kept in sessionStorage, sent as a bearer token), and evaluates edited
// policies in the page with the JS package: live validation, and a what-if
// that replays journaled events under the edited policy.
import init, { Engine, validatePolicy, version } from "./pkg/srs_policy.js";
import * as srs from "./pkg/srs_policy.js";
import { cell, el, fillErrors, localTime, outcomeLabel, providerName, reasonItems } from "./shared/render.js";

const TOKEN = "srs-admin-token";
const MAX_REPLAY = 10_000;
const $ = (id) => document.getElementById(id);

/** The admin token was refused: back to the sign-in form. */
class Unauthorized extends Error {}

/** One admin API call; the body parsed as JSON when it is JSON. */
async function api(path, { method = "GET", body } = {}) {
  const headers = { Authorization: `Bearer ${sessionStorage.getItem(TOKEN) ?? ""}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(path, { method, headers, body });
  if (response.status === 401) throw new Unauthorized("the admin token was refused");
  const text = await response.text();
  let parsed = text;
  try {
    parsed = text ? JSON.parse(text) : null;
  } catch {
    // Not JSON (the Prometheus text): kept as text.
  }
  return { status: response.status, ok: response.ok, body: parsed };
}

/** The first error message of an error body, for people. */
function messageOf(body) {
  const error = body?.errors?.[0];
  return error ? `${error.code}: ${error.message}` : JSON.stringify(body);
}

/** A GET that must succeed. */
async function get(path) {
  const r = await api(path);
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status} ${messageOf(r.body)}`);
  return r.body;
}

function showProblem(error) {
  if (error instanceof Unauthorized) {
    signOut("The admin token was refused (HTTP 401): sign in again.");
    return;
  }
  $("problem").textContent = error.message;
  $("problem").hidden = false;
}

// --- sign-in -------------------------------------------------------------

function signOut(message) {
  sessionStorage.removeItem(TOKEN);
  $("tabs").hidden = true;
  $("sign-out").hidden = true;
  for (const view of document.querySelectorAll(".view")) view.hidden = true;
  $("sign-in").hidden = false;
  $("sign-in-error").hidden = !message;
  $("sign-in-error").textContent = message ?? "";
  $("token").focus();
}

async function signIn(token) {
  sessionStorage.setItem(TOKEN, token);
  try {
    await get("/v1/status");
  } catch (e) {
    if (e instanceof Unauthorized) {
      signOut("That is not the admin token of this srs serve (HTTP 401).");
      return;
    }
    throw e;
  }
  $("sign-in").hidden = true;
  $("sign-in-error").hidden = true;
  $("tabs").hidden = false;
  $("sign-out").hidden = false;
  await show("overview");
}

// --- views ---------------------------------------------------------------

const loaders = {};

async function show(view) {
  $("problem").hidden = true;
  for (const section of document.querySelectorAll(".view")) section.hidden = section.id !== view;
  for (const tab of $("tabs").querySelectorAll("button")) {
    if (tab.dataset.view === view) tab.setAttribute("aria-current", "page");
    else tab.removeAttribute("aria-current");
  }
  document.body.dataset.view = view;
  document.body.dataset.loaded = "";
  try {
    await loaders[view]?.();
    document.body.dataset.loaded = view;
  } catch (e) {
    showProblem(e);
  }
}

/** Counters of a metric in the Prometheus text, by one label. */
function counters(text, metric, label) {
  const out = {};
  const pattern = new RegExp(`^${metric}\\{[^}]*${label}="([^"]*)"[^}]*\\} (\\S+)$`);
  for (const line of text.split("\n")) {
    const m = pattern.exec(line);
    if (m) out[m[1]] = (out[m[1]] ?? 0) + Number(m[2]);
  }
  return out;
}

function fillCounts(table, counts) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const [name, n] of Object.entries(counts)) {
    const row = body.insertRow();
    row.dataset.name = name;
    cell(row, outcomeLabel(name));
    cell(row, String(n), "num");
  }
}

loaders.overview = async () => {
  const [status, blocked, metrics] = await Promise.all([
    get("/v1/status"),
    get("/v1/blocked"),
    fetch("/metrics").then((r) => r.text()),
  ]);
  $("ov-events").textContent = status.events;
  $("ov-scheduled").textContent = status.tasks.scheduled;
  $("ov-pending").textContent = status.tasks.pending;
  $("ov-failed").textContent = status.tasks.failed;
  $("ov-blocked").textContent = blocked.users.length;
  fillCounts($("ov-tasks"), status.tasks);
  fillCounts($("ov-outcomes"), counters(metrics, "srs_events_total", "outcome"));
  $("ov-blocked-users").replaceChildren(...(blocked.users.length
    ? blocked.users.map((u) => el("li", u, "path"))
    : [el("li", "No one.", "muted")]));
  const { generation, summary } = status.policy;
  $("ov-policy").textContent = `generation ${generation}: ${summary.mode}, providers ${summary.providers.map(providerName).join(", ")}, grace period ${summary.grace_seconds} s`;
};

/** Rows of events with their decisions, reasons and what matched. */
function fillEvents(table, events) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const e of events) {
    const d = e.answer?.decision;
    const row = body.insertRow();
    row.dataset.event = e.id;
    cell(row, e.time ?? e.received, "path");
    cell(row, e.id, "path");
    cell(row, e.user.upn ?? e.user.email ?? "—");
    cell(row, e.device ?? "—");
    const outcome = cell(row, d ? outcomeLabel(d.outcome) : "—", `value ${d?.outcome ?? ""}`);
    outcome.dataset.outcome = d?.outcome ?? "";
    if (d && !d.enforced) outcome.append(el("small", " (report only)"));
    if (d?.scheduled) outcome.append(el("small", ` due ${d.scheduled.due}`));
    cell(row, d?.access ?? "—", `value ${d?.access ?? ""}`);
    const reasons = el("ol", undefined, "reasons");
    reasons.append(...reasonItems(d?.reasons ?? []));
    cell(row, "").append(reasons);
  }
}

const paging = { before: null, next: null };

async function loadEvents() {
  const params = new URLSearchParams({ limit: "50" });
  const user = $("ev-user").value.trim();
  const device = $("ev-device").value.trim();
  if (user) params.set("user", user);
  if (device) params.set("device", device);
  if (paging.before !== null) params.set("before", String(paging.before));
  const { events, next } = await get(`/v1/events?${params}`);
  fillEvents($("ev-table"), events);
  $("ev-empty").hidden = events.length > 0;
  paging.next = next;
  $("ev-older").disabled = next === null;
}
loaders.events = loadEvents;

async function loadSubject() {
  const kind = $("su-kind").value;
  const id = $("su-id").value.trim();
  if (!id) return;
  const devices = [];
  let verdict;
  if (kind === "user") {
    const user = await get(`/v1/users/${encodeURIComponent(id)}`);
    verdict = user.verdict;
    devices.push(...user.devices);
  } else {
    const r = await api(`/v1/devices/${encodeURIComponent(id)}`);
    if (r.status === 404) verdict = "unknown device";
    else if (!r.ok) throw new Error(`HTTP ${r.status} ${messageOf(r.body)}`);
    else {
      devices.push(r.body);
      verdict = r.body.verdict;
    }
  }
  $("su-verdict").textContent = verdict;
  $("su-verdict").className = `value ${verdict}`;
  $("su-devices-count").textContent = devices.length;
  const body = $("su-devices").tBodies[0];
  body.replaceChildren();
  for (const d of devices) {
    const row = body.insertRow();
    cell(row, d.device, "path");
    cell(row, d.event_id, "path");
    cell(row, outcomeLabel(d.outcome), `value ${d.outcome}`);
    cell(row, d.access, `value ${d.access}`);
    cell(row, d.verdict, `value ${d.verdict}`);
    cell(row, d.due ?? "—", "path");
  }
  const { events } = await get(`/v1/events?${new URLSearchParams({ [kind]: id, limit: "200" })}`);
  fillEvents($("su-events"), events);
  $("su-result").hidden = false;
}
loaders.subject = loadSubject;

function fillTasks(table, tasks, columns) {
  const body = table.tBodies[0];
  body.replaceChildren();
  for (const t of tasks) {
    const row = body.insertRow();
    row.dataset.task = String(t.id);
    for (const column of columns) column(row, t);
  }
}

const taskId = (row, t) => cell(row, String(t.id));
const provider = (row, t) => cell(row, providerName(t.provider));
const subject = (row, t) => cell(row, t.subject, "path");
const events = (row, t) => cell(row, t.events.join(", "), "path");

async function retry(task, button) {
  button.disabled = true;
  const r = await api(`/v1/tasks/${task.id}/retry`, { method: "POST" });
  const again = `Task ${task.id} (${providerName(task.provider)}, ${task.subject}) is pending again${r.body?.joined ? ` as task ${r.body.task}, which was already pending` : ""}`;
  $("rv-result").textContent = !r.ok
    ? `Task ${task.id} was not retried: HTTP ${r.status} ${messageOf(r.body)}`
    : r.body.message
      ? `${again}, but this srs cannot call the provider: ${r.body.message}`
      : `${again}; srs is calling the provider now.`;
  await loaders.revocations();
}

loaders.revocations = async () => {
  const [failed, pending] = await Promise.all([
    get("/v1/tasks?state=failed&limit=500"),
    get("/v1/tasks?state=pending&limit=500"),
  ]);
  fillTasks($("rv-failed"), failed.tasks, [
    taskId, provider, subject,
    (row, t) => cell(row, "").append(el("span", t.error_code ?? "—", "code")),
    (row, t) => cell(row, t.http_status === null ? "—" : String(t.http_status)),
    (row, t) => cell(row, t.provider_code ?? "—", "path"),
    (row, t) => cell(row, t.message ?? "—"),
    (row, t) => cell(row, String(t.attempts)),
    events,
    (row, t) => {
      const button = el("button", "Retry");
      button.type = "button";
      button.title = `Retry revoking ${t.subject} at ${providerName(t.provider)}`;
      button.addEventListener("click", () => retry(t, button).catch(showProblem));
      cell(row, "").append(button);
    },
  ]);
  $("rv-none").hidden = failed.tasks.length > 0;
  fillTasks($("rv-pending"), pending.tasks, [
    taskId, provider, subject,
    (row, t) => cell(row, String(t.attempts)),
    (row, t) => cell(row, t.error_code ? `${t.error_code} ${t.http_status ?? ""} ${t.message ?? ""}` : "—"),
    events,
  ]);
};

loaders.scheduled = async () => {
  const { tasks } = await get("/v1/tasks?state=scheduled&limit=10000");
  tasks.sort((a, b) => a.due.localeCompare(b.due) || a.id - b.id);
  fillTasks($("sc-table"), tasks, [
    taskId, provider, subject,
    (row, t) => cell(row, t.device ?? "—", "path"),
    (row, t) => cell(row, t.due, "path"),
    (row, t) => cell(row, localTime(t.due)),
    events,
  ]);
  $("sc-none").hidden = tasks.length > 0;
};

// --- policy editor and what-if ---------------------------------------------

let inForce = "";

/** The edited policy, or a failure answer (as validatePolicy gives one). */
function editedPolicy() {
  try {
    return { policy: JSON.parse($("pol-text").value) };
  } catch (e) {
    return { failure: { type: "failure", errors: [{ code: "malformed-json", path: "policy", message: `the policy is not valid JSON: ${e.message}` }] } };
  }
}

function validate() {
  const { policy, failure } = editedPolicy();
  const answer = failure ?? validatePolicy(policy);
  const failed = answer.type === "failure";
  $("pol-errors").hidden = !failed;
  if (failed) {
    fillErrors($("pol-errors"), answer.errors);
    $("pol-valid").textContent = `Invalid: ${answer.errors.length} error${answer.errors.length === 1 ? "" : "s"}.`;
    $("pol-valid").className = "error";
  } else {
    const s = answer.policy;
    $("pol-valid").textContent = `Valid: ${s.mode}, providers ${s.providers.map(providerName).join(", ")}, grace period ${s.grace_seconds} s.`;
    $("pol-valid").className = "ok";
  }
  return failed ? null : policy;
}

loaders.policy = async () => {
  const { generation, policy } = await get("/v1/policy");
  inForce = `${JSON.stringify(policy, null, 2)}\n`;
  $("pol-generation").textContent = `(generation ${generation} in force)`;
  if (!$("pol-text").dataset.edited) $("pol-text").value = inForce;
  validate();
};

/** A user's name in a what-if list. */
const userOf = (e) => e.user.upn ?? e.user.email ?? e.event?.user?.upn ?? e.event?.user?.email ?? "(no user)";

/** When a decision revokes: `now`, at its grace period's due time, or never. */
function revokes(d) {
  if (!d || !d.enforced) return null;
  if (d.outcome === "revoke") return "now";
  if (d.outcome === "grace") return d.scheduled?.due ?? null;
  return null;
}

/**
 * Replays journaled events under `policy` with one Engine and compares each
 * answer with the journaled decision. Pure: returns the lists and the time.
 */
function whatIf(policy, events) {
  const started = performance.now();
  const engine = new Engine(policy);
  const newly = new Set();
  const noLonger = new Set();
  const grace = new Set();
  const changes = [];
  let replayed = 0;
  let unreadable = 0;
  try {
    for (const e of events) {
      if (!e.event) {
        unreadable += 1;
        continue;
      }
      const was = e.answer?.decision;
      const answer = engine.evaluate(e.event);
      replayed += 1;
      const now = answer.type === "success" ? answer.decision : null;
      const before = revokes(was);
      const after = revokes(now);
      const user = userOf(e);
      if (before === null && after !== null) newly.add(user);
      else if (before !== null && after === null) noLonger.add(user);
      else if (before !== after) grace.add(user);
      if (!now || was?.outcome !== now.outcome || was?.enforced !== now.enforced || before !== after) {
        changes.push({ e, was, now, answer });
      }
    }
  } finally {
    engine.free();
  }
  const sorted = (set) => [...set].sort();
  return {
    newly: sorted(newly), noLonger: sorted(noLonger), grace: sorted(grace),
    changes, replayed, unreadable, ms: performance.now() - started,
  };
}

function describe(d, answer) {
  if (!d) return `cannot be evaluated: ${answer?.errors?.map((e) => `${e.code} at ${e.path}`).join(", ")}`;
  const when = revokes(d);
  const revoked = when === "now" ? ", revoked now" : when ? `, revoked at ${when}` : "";
  return `${outcomeLabel(d.outcome)}${d.enforced ? "" : " (report only)"}${revoked}`;
}

async function preview() {
  const policy = validate();
  if (!policy) {
    $("wi-summary").textContent = "Fix the policy's errors first.";
    return;
  }
  const n = Math.min(MAX_REPLAY, Math.max(1, Number($("wi-count").value) || 1));
  $("wi-summary").textContent = `Fetching the last ${n} events…`;
  const fetchStarted = performance.now();
  const { events } = await get(`/v1/events?limit=${n}`);
  const fetched = performance.now() - fetchStarted;
  const result = whatIf(policy, events);
  const list = (id, users) => {
    $(id).replaceChildren(...(users.length ? users.map((u) => el("li", u, "path")) : [el("li", "No one.", "muted")]));
    $(`${id}-count`).textContent = `(${users.length})`;
  };
  list("wi-newly", result.newly);
  list("wi-nolonger", result.noLonger);
  list("wi-grace", result.grace);
  const body = $("wi-changes").tBodies[0];
  body.replaceChildren();
  for (const { e, was, now, answer } of result.changes.slice(0, 500)) {
    const row = body.insertRow();
    cell(row, e.id, "path");
    cell(row, userOf(e));
    cell(row, e.device ?? "—");
    cell(row, describe(was));
    cell(row, describe(now, answer));
  }
  $("wi-summary").textContent = `Replayed ${result.replayed} of ${events.length} events in ${result.ms.toFixed(0)} ms (fetched in ${fetched.toFixed(0)} ms)`
    + `${result.unreadable ? `; ${result.unreadable} without a kept event body were skipped` : ""}; ${result.changes.length} decided differently`
    + `${result.changes.length > 500 ? " (the first 500 are listed)" : ""}.`;
  $("wi-result").hidden = false;
  window.srsConsole.lastWhatIf = {
    events: events.length, replayed: result.replayed, ms: result.ms, fetchMs: fetched,
    newly: result.newly, noLonger: result.noLonger, grace: result.grace, changes: result.changes.length,
  };
}

async function apply() {
  const r = await api("/v1/policy", { method: "PUT", body: $("pol-text").value });
  $("pol-applied").hidden = false;
  $("pol-applied-status").textContent = r.ok ? `HTTP ${r.status}: in force` : `HTTP ${r.status}: refused, the old policy stays in force`;
  $("pol-applied-body").textContent = JSON.stringify(r.body, null, 2);
  if (r.ok) {
    delete $("pol-text").dataset.edited;
    await loaders.policy();
  }
}

// --- start ---------------------------------------------------------------

async function main() {
  await init();
  window.srs = srs; // for the browser tests and the curious
  window.srsConsole = {};
  $("version").textContent = `v${version()}`;
  $("sign-in").addEventListener("submit", (event) => {
    event.preventDefault();
    signIn($("token").value).catch(showProblem);
  });
  $("sign-out").addEventListener("click", () => signOut());
  for (const tab of $("tabs").querySelectorAll("button")) {
    tab.addEventListener("click", () => show(tab.dataset.view));
  }
  $("ev-search").addEventListener("submit", (event) => {
    event.preventDefault();
    paging.before = null;
    show("events");
  });
  $("ev-newest").addEventListener("click", () => {
    paging.before = null;
    show("events");
  });
  $("ev-older").addEventListener("click", () => {
    paging.before = paging.next;
    show("events");
  });
  $("su-form").addEventListener("submit", (event) => {
    event.preventDefault();
    show("subject");
  });
  let timer;
  $("pol-text").addEventListener("input", () => {
    $("pol-text").dataset.edited = "true";
    clearTimeout(timer);
    timer = setTimeout(validate, 120);
  });
  $("pol-reset").addEventListener("click", () => {
    $("pol-text").value = inForce;
    delete $("pol-text").dataset.edited;
    validate();
  });
  $("pol-apply").addEventListener("click", () => apply().catch(showProblem));
  $("wi-form").addEventListener("submit", (event) => {
    event.preventDefault();
    preview().catch(showProblem);
  });
  if (sessionStorage.getItem(TOKEN)) await signIn(sessionStorage.getItem(TOKEN));
  else signOut();
  document.body.dataset.ready = "true";
}

main().catch((e) => {
  document.body.dataset.ready = "error";
  showProblem(e);
});
