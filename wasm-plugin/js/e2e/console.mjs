// The admin console in Debian's Chromium, against a running `srs serve`
// that host-runner/tests/console.rs started and filled (it passes the
// address, the tokens and the expected what-if lists in the environment).
// Run by that test, not on its own.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const URL_ = process.env.SRS_URL;
const ADMIN = process.env.SRS_ADMIN;
const INTAKE = process.env.SRS_INTAKE;
const EXPECT = JSON.parse(process.env.SRS_EXPECT ?? "null");
const SHOTS = process.env.SRS_SHOTS;
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";
const ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
  "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"];

let browser, page;
const problems = [];
/** An HTTP status the step under way provokes on purpose (Chromium logs it as an error). */
let provoked = null;

async function admin(path, options = {}) {
  const response = await fetch(`${URL_}${path}`, {
    ...options, headers: { Authorization: `Bearer ${ADMIN}`, ...options.headers },
  });
  return { status: response.status, body: await response.json() };
}

const check = async (user) => (await fetch(`${URL_}/v1/check`, { headers: { "X-SRS-User": user } })).status;

async function push(lines) {
  const response = await fetch(`${URL_}/v1/events`, {
    method: "POST",
    headers: { Authorization: `Bearer ${INTAKE}`, "Content-Type": "application/x-ndjson" },
    body: lines.join("\n"),
  });
  assert.equal(response.status, 202, await response.text());
}

/** Opens a view by its tab and waits until it has loaded. */
async function view(name) {
  await page.click(`#tabs button[data-view="${name}"]`);
  await page.waitForFunction((v) => document.body.dataset.loaded === v, name);
}

const shot = (name, fullPage = true) => page.screenshot({ path: join(SHOTS, `console-${name}.png`), fullPage });

/** Every visible control has a visible label and is reached by Tab. */
async function keyboardAndLabels() {
  const controls = await page.evaluate(() => {
    const visible = (e) => e && e.offsetParent !== null;
    const all = [...document.querySelectorAll("button, input, select, textarea")]
      .filter((c) => visible(c) && !c.disabled);
    return all.map((c, i) => {
      c.dataset.k = String(i);
      const label = c.tagName === "BUTTON"
        ? c.innerText.trim()
        : [...c.labels].filter(visible).map((l) => l.innerText.trim()).join(" ");
      return { k: String(i), name: c.id || c.outerHTML.slice(0, 60), label };
    });
  });
  assert.ok(controls.length > 0);
  assert.deepEqual(controls.filter((c) => !c.label).map((c) => c.name), [], "controls without a visible label");
  await page.evaluate(() => document.activeElement?.blur());
  const reached = new Set();
  for (let i = 0; i < controls.length + 20 && reached.size < controls.length; i++) {
    await page.keyboard.press("Tab");
    const k = await page.evaluate(() => document.activeElement?.dataset.k);
    if (k !== undefined) reached.add(k);
  }
  assert.deepEqual(controls.filter((c) => !reached.has(c.k)).map((c) => c.name), [], "controls Tab does not reach");
}

/** The users a what-if list shows. */
const listed = (id) => page.$$eval(`#${id} li.path`, (lis) => lis.map((li) => li.textContent));

async function preview(policy, count) {
  await page.fill("#pol-text", JSON.stringify(policy, null, 2));
  await page.fill("#wi-count", String(count));
  await page.evaluate(() => { delete window.srsConsole.lastWhatIf; });
  await page.click("#wi-form button[type=submit]");
  await page.waitForFunction(() => window.srsConsole.lastWhatIf, null, { timeout: 60_000 });
  return page.evaluate(() => window.srsConsole.lastWhatIf);
}

before(async () => {
  assert.ok(URL_ && ADMIN && EXPECT && SHOTS, "run by host-runner/tests/console.rs");
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  page = await browser.newPage({ viewport: { width: 1360, height: 900 } });
  page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
  page.on("console", (m) => {
    if (m.type() !== "error") return;
    if (provoked && m.text().includes(`status of ${provoked} `)) return;
    problems.push(`console: ${m.text()} (${m.location().url})`);
  });
  await page.goto(`${URL_}/console/`);
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 30_000 });
  assert.equal(await page.evaluate(() => document.body.dataset.ready), "true", problems.join("\n"));
});

after(async () => {
  await browser?.close();
});

test("a wrong token is refused and says so", async () => {
  const other = await browser.newPage();
  try {
    await other.goto(`${URL_}/console/`);
    await other.waitForFunction(() => document.body.dataset.ready === "true");
    await other.fill("#token", "not-the-token");
    await other.press("#token", "Enter");
    await other.waitForSelector("#sign-in-error:not([hidden])");
    assert.match(await other.textContent("#sign-in-error"), /not the admin token.*401/);
    assert.equal(await other.isVisible("#tabs"), false);
    assert.equal(await other.evaluate(() => sessionStorage.getItem("srs-admin-token")), null);
    await other.screenshot({ path: join(SHOTS, "console-sign-in-refused.png") });
  } finally {
    await other.close();
  }
});

test("sign in; the overview's counts are /v1/status's", async () => {
  await keyboardAndLabels();
  await page.fill("#token", ADMIN);
  await page.click("#sign-in button[type=submit]");
  await page.waitForFunction(() => document.body.dataset.loaded === "overview");
  assert.equal(await page.evaluate(() => sessionStorage.getItem("srs-admin-token")), ADMIN);
  const { body: status } = await admin("/v1/status");
  assert.equal(status.events, EXPECT.events);
  const tile = async (id) => Number(await page.textContent(`#${id}`));
  assert.equal(await tile("ov-events"), status.events);
  assert.equal(await tile("ov-scheduled"), status.tasks.scheduled);
  assert.equal(await tile("ov-pending"), status.tasks.pending);
  assert.equal(await tile("ov-failed"), status.tasks.failed);
  for (const state of ["scheduled", "pending", "done", "failed", "cancelled"]) {
    assert.equal(Number(await page.textContent(`#ov-tasks tr[data-name="${state}"] td.num`)), status.tasks[state], state);
  }
  // Blocked at the gate: the quarantined devices' users and ghost (revoked at once).
  const { body: blocked } = await admin("/v1/blocked");
  assert.equal(await tile("ov-blocked"), blocked.users.length);
  assert.ok(blocked.users.includes(EXPECT.ghost));
  assert.deepEqual(await page.$$eval("#ov-blocked-users li", (lis) => lis.map((li) => li.textContent)), blocked.users);
  assert.equal(Number(await page.textContent('#ov-outcomes tr[data-name="grace"] td.num')), 7);
  await shot("overview");
  await keyboardAndLabels();
});

test("searching a user shows their decisions with reasons and what matched", async () => {
  await view("events");
  assert.equal(await page.$$eval("#ev-table tbody tr", (trs) => trs.length), 50 > EXPECT.events ? EXPECT.events : 50);
  await page.fill("#ev-user", EXPECT.searchUser.toUpperCase());
  await page.click("#ev-search button[type=submit]");
  await page.waitForFunction(() => document.body.dataset.loaded === "events"
    && document.querySelectorAll("#ev-table tbody tr").length === 1);
  const row = "#ev-table tbody tr";
  assert.equal(await page.getAttribute(`${row} td[data-outcome]`, "data-outcome"), "grace");
  assert.deepEqual(await page.$$eval(`${row} .reasons > li`, (lis) => lis.map((li) => li.dataset.rule)),
    ["blocking-action", "grace-period"]);
  assert.match(await page.textContent(`${row} .reasons`), /policy jailbreak: Block/);
  await shot("events");
  await keyboardAndLabels();
});

test("a user's page shows their decisions over time and the gate's verdict", async () => {
  await view("subject");
  await page.fill("#su-id", "alice@example.com");
  await page.click("#su-form button[type=submit]");
  await page.waitForSelector("#su-result:not([hidden])");
  assert.equal(await page.textContent("#su-verdict"), "allow");
  assert.deepEqual(await page.$$eval("#su-events td[data-outcome]", (tds) => tds.map((td) => td.dataset.outcome)),
    ["no_action", "grace"]);
  assert.equal(await page.textContent("#su-devices tbody td.path"), EXPECT.aliceDevice);
  await shot("user");
  await keyboardAndLabels();
  await page.selectOption("#su-kind", "device");
  await page.fill("#su-id", `dev-${EXPECT.ghost}`);
  await page.click("#su-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#su-verdict").textContent === "block");
});

test("a failed revocation shows the provider's error, and retry re-queues it", async () => {
  await view("revocations");
  const row = "#rv-failed tbody tr";
  assert.equal(await page.$$eval(row, (trs) => trs.length), 1);
  const cells = await page.$$eval(`${row} td`, (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(cells.slice(1, 6), ["Office 365", EXPECT.ghost, "user-not-found", "404", "Request_ResourceNotFound"]);
  assert.match(cells[6], /\S/);
  assert.equal(cells[7], "1");
  await shot("revocations-failed");
  await keyboardAndLabels();
  await page.click(`${row} button`);
  await page.waitForFunction(() => /pending again/.test(document.querySelector("#rv-result").textContent));
  // Executed at once: the provider refuses again, and the task is failed with a second attempt.
  for (let i = 0; ; i++) {
    await view("revocations");
    const attempts = await page.$$eval(`${row} td:nth-child(8)`, (tds) => tds.map((td) => td.textContent));
    if (attempts[0] === "2") break;
    assert.ok(i < 100, `the retried task did not end: ${attempts}`);
    await page.waitForTimeout(100);
  }
});

test("scheduled revocations show their due time", async () => {
  await view("scheduled");
  const rows = await page.$$eval("#sc-table tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.equal(rows.length, 12); // six users' grace periods, at both providers
  for (const row of rows) assert.match(row[4], /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  await shot("scheduled");
});

test("the policy editor validates as you type, every error with its path", async () => {
  await view("policy");
  await page.waitForFunction(() => /^Valid/.test(document.querySelector("#pol-valid").textContent));
  const policy = JSON.parse(await page.inputValue("#pol-text"));
  await page.fill("#pol-text", JSON.stringify({ ...policy, mode: "loud", providers: [] }, null, 2));
  await page.waitForSelector("#pol-errors:not([hidden])");
  const paths = await page.$$eval("#pol-errors tbody td.path", (tds) => tds.map((td) => td.textContent));
  assert.deepEqual(paths.sort(), ["policy.mode", "policy.providers"]);
  await shot("policy-errors");
  await page.fill("#pol-text", "{ nope");
  await page.waitForFunction(() => document.querySelector("#pol-errors tbody .code")?.textContent === "malformed-json");
  await page.click("#pol-reset");
  await page.waitForFunction(() => /^Valid/.test(document.querySelector("#pol-valid").textContent));
  await keyboardAndLabels();
});

test("the what-if lists exactly the users the events say", async () => {
  const { body: { policy } } = await admin("/v1/policy");
  const reportOnly = await preview({ ...policy, mode: "report_only" }, 1000);
  assert.equal(reportOnly.replayed, EXPECT.events);
  assert.deepEqual({ newly: reportOnly.newly, noLonger: reportOnly.noLonger, grace: reportOnly.grace }, EXPECT.reportOnly);
  assert.deepEqual(await listed("wi-nolonger"), EXPECT.reportOnly.noLonger);

  const nagBlocking = { ...policy, actions: { ...policy.actions, Nag: "blocking" } };
  const blocking = await preview(nagBlocking, 1000);
  assert.deepEqual({ newly: blocking.newly, noLonger: blocking.noLonger, grace: blocking.grace }, EXPECT.nagBlocking);
  assert.deepEqual(await listed("wi-newly"), EXPECT.nagBlocking.newly);
  assert.equal(blocking.changes, EXPECT.nagBlocking.newly.length);
  await shot("what-if");
  await keyboardAndLabels();
});

test("apply switches the policy and the gate's verdicts follow", async () => {
  const { body: { policy } } = await admin("/v1/policy");
  const user = EXPECT.nagUser;
  assert.equal(await check(user), 204);
  await page.fill("#pol-text", JSON.stringify({ ...policy, actions: { ...policy.actions, Nag: "blocking" }, grace_seconds: 0 }, null, 2));
  await page.click("#pol-apply");
  await page.waitForSelector("#pol-applied:not([hidden])");
  assert.match(await page.textContent("#pol-applied-status"), /HTTP 200/);
  assert.match(await page.textContent("#pol-applied-body"), /"type": "success"/);
  assert.match(await page.textContent("#pol-generation"), /generation 2/);
  // The same kind of event as before for this user's device now blocks.
  const time = new Date().toISOString().replace(/\.\d+Z$/, "Z");
  await push([JSON.stringify({ id: "evt-after-apply", time, device: { id: `dev-${user}`, state: "active", platform: "ios" },
    user: { upn: user }, compliance: { compliant: false, violations: [{ policy: "nag" }] } })]);
  assert.equal(await check(user), 403);
  await view("subject");
  await page.selectOption("#su-kind", "user");
  await page.fill("#su-id", user);
  await page.click("#su-form button[type=submit]");
  await page.waitForFunction(() => document.querySelector("#su-verdict").textContent === "block");
  // An invalid policy is refused and the server's answer shown.
  await view("policy");
  await page.fill("#pol-text", JSON.stringify({ ...policy, uem: "mdm9000" }));
  provoked = 400;
  await page.click("#pol-apply");
  await page.waitForFunction(() => /HTTP 400/.test(document.querySelector("#pol-applied-status").textContent));
  provoked = null;
  assert.match(await page.textContent("#pol-applied-body"), /policy\.uem/);
  assert.match(await page.textContent("#pol-generation"), /generation 2/);
});

// Its time is measured and written down (BENCHMARKS.md), not asserted: a
// shared machine's load is no test result.
test("the what-if over 10,000 events finds exactly the newly revoked users", async () => {
  const start = Date.now();
  const lines = [];
  const lost = new Set();
  for (let i = 0; i < 10_000; i++) {
    const user = `bench${i % 500}@example.com`;
    const state = i % 10 === 0 ? "lost" : "active";
    if (state === "lost") lost.add(user);
    const compliance = i % 3 === 0
      ? { compliant: false, violations: [{ policy: "os-version", actions: ["Send Alert"] }] }
      : { compliant: true };
    lines.push(JSON.stringify({ id: `bench-${i}`, time: "2026-11-27T10:00:00Z",
      device: { id: `bench-dev-${i}`, state, platform: "android" }, user: { upn: user }, compliance }));
  }
  for (let i = 0; i < lines.length; i += 200) await push(lines.slice(i, i + 200));
  const pushed = Date.now() - start;
  await view("policy");
  const { body: { policy } } = await admin("/v1/policy");
  const states = policy.revoke_on_states ?? ["quarantined", "wiped", "retired"];
  const result = await preview({ ...policy, revoke_on_states: [...states, "lost"] }, 10_000);
  assert.equal(result.events, 10_000);
  assert.equal(result.replayed, 10_000);
  assert.deepEqual(result.newly, [...lost].sort());
  const report = { events: result.replayed, replay_ms: Math.round(result.ms), fetch_ms: Math.round(result.fetchMs), push_ms: pushed };
  writeFileSync(join(SHOTS, "what-if-10000.json"), `${JSON.stringify(report)}\n`);
  console.log(`what-if over ${result.replayed} events: replayed in ${report.replay_ms} ms, fetched in ${report.fetch_ms} ms`);
  await shot("what-if-10000", false);
});

test("no console errors", () => {
  assert.deepEqual(problems, []);
});
