// The playground page in Debian's Chromium, driven by playwright-core, served
// from the repository root on 127.0.0.1: the vectors run in the browser and
// match native answers; the page's verdict follows edits; errors show paths.
import { after, before, test } from "node:test";
import assert from "node:assert/strict";
import { createServer } from "node:http";
import { mkdirSync, readFileSync } from "node:fs";
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { loadNativeAnswers, loadVectors, root, summaryCase } from "./vectors.mjs";

const TYPES = { ".html": "text/html", ".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".json": "application/json", ".wasm": "application/wasm" };
const SHOTS = fileURLToPath(new URL("target/browser-test/", root));
const CHROMIUM = process.env.CHROMIUM ?? "/usr/bin/chromium";

let server, browser, page, base;

before(async () => {
  server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, "http://x").pathname);
    const file = new URL(`.${path.endsWith("/") ? `${path}index.html` : path}`, root);
    if (!file.href.startsWith(root.href) || file.pathname.includes("/..")) {
      res.writeHead(403).end();
      return;
    }
    try {
      const body = readFileSync(file);
      res.writeHead(200, { "content-type": TYPES[extname(file.pathname)] ?? "application/octet-stream" }).end(body);
    } catch {
      res.writeHead(404).end("not found");
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
  browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"],
  });
  page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  const problems = [];
  page.on("pageerror", (e) => problems.push(e.message));
  await page.goto(`${base}/web/`);
  await page.waitForFunction(() => document.body.dataset.ready, null, { timeout: 30_000 });
  assert.equal(await page.evaluate(() => document.body.dataset.ready), "true", problems.join("\n"));
});

after(async () => {
  await browser?.close();
  server?.close();
});

test("every vector gives the native answer in Chromium", async () => {
  const vectors = loadVectors();
  const native = loadNativeAnswers();
  const mismatches = await page.evaluate(({ vectors, native }) => {
    const out = [];
    for (const file of vectors) {
      file.cases.forEach((c, i) => {
        const answer = JSON.stringify(window.srs.evaluate(file.policy, c.event));
        if (answer !== native[file.name][i]) out.push(`${file.name}: ${c.description}\n  got ${answer}`);
      });
    }
    return out;
  }, { vectors, native });
  assert.deepEqual(mismatches, []);
  assert.ok(vectors.reduce((n, f) => n + f.cases.length, 0) >= 60);
});

test("validatePolicy answers the policy summary in Chromium", async () => {
  const answer = await page.evaluate((policy) => window.srs.validatePolicy(policy), summaryCase.policy);
  assert.deepEqual(answer, JSON.parse(summaryCase.answer));
  const text = await page.evaluate((policy) => JSON.stringify(window.srs.validatePolicy(policy)), summaryCase.policy);
  assert.equal(text, summaryCase.answer);
});

test("the shipped example revokes, and a non-blocking action flips it", async () => {
  await page.selectOption("#example", "jailbroken-iphone");
  await page.waitForFunction(() => document.querySelector("#outcome").textContent === "revoke");
  assert.equal(await page.textContent("#access"), "block");
  assert.match(await page.textContent("#revocations"), /Office 365\s*alice@example\.com/);
  assert.equal(await page.getAttribute("#reasons li", "data-rule"), "blocking-action");
  mkdirSync(SHOTS, { recursive: true });
  await page.screenshot({ path: `${SHOTS}playground.png` });

  const event = JSON.parse(await page.inputValue("#event"));
  event.compliance.violations = [{ policy: "os-version", actions: ["Send Alert"] }];
  await page.fill("#event", JSON.stringify(event, null, 2));
  await page.waitForFunction(() => document.querySelector("#outcome").textContent === "no action");
  assert.equal(await page.textContent("#access"), "allow");
  assert.equal(await page.getAttribute("#reasons li", "data-rule"), "non-blocking-only");
});

test("a malformed event shows each error with its path", async () => {
  const event = JSON.parse(await page.inputValue("#event"));
  delete event.user;
  event.device.state = "stolen";
  await page.fill("#event", JSON.stringify(event, null, 2));
  await page.waitForFunction(() => document.querySelector("#outcome").textContent === "invalid input");
  const rows = await page.$$eval("#errors tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
  assert.deepEqual(rows.map(([code, path]) => [code, path]), [
    ["invalid-value", "event.device.state"],
    ["missing-field", "event.user"],
  ]);
  await page.screenshot({ path: `${SHOTS}playground-errors.png` });

  await page.fill("#event", "{ not json");
  await page.waitForFunction(() => document.querySelector("#errors tbody td.path")?.textContent === "event");
  assert.equal(await page.textContent("#errors tbody .code"), "malformed-json");
});

test("a grace period shows the due time, UTC and local, and what is scheduled apart from what is revoked now", async () => {
  // A page of its own in a known time zone (Japan: UTC+09:00, no daylight saving).
  const local = await browser.newPage({ viewport: { width: 1280, height: 800 }, timezoneId: "Asia/Tokyo" });
  const problems = [];
  local.on("pageerror", (e) => problems.push(e.message));
  try {
    await local.goto(`${base}/web/`);
    await local.waitForFunction(() => document.body.dataset.ready, null, { timeout: 30_000 });
    assert.equal(await local.evaluate(() => document.body.dataset.ready), "true", problems.join("\n"));
    await local.selectOption("#example", "jailbroken-iphone");
    await local.waitForFunction(() => document.querySelector("#outcome").textContent === "revoke");
    assert.equal(await local.isVisible("#scheduled-panel"), false);

    // An offset and a fraction: the due time is in whole UTC seconds.
    const event = JSON.parse(await local.inputValue("#event"));
    event.time = "2026-11-27T10:15:00.750-03:00";
    await local.fill("#event", JSON.stringify(event, null, 2));
    const example = JSON.parse(await local.inputValue("#policy"));
    assert.equal(example.grace_seconds, undefined);
    const now = await local.evaluate(({ policy, event }) => window.srs.evaluate(policy, event).decision.revocations,
      { policy: example, event });
    assert.equal(now.length, 2);

    await local.selectOption("#preset", "grace");
    const policy = JSON.parse(await local.inputValue("#policy"));
    assert.deepEqual(policy, { ...example, grace_seconds: 14_400 });
    await local.waitForFunction(() => document.querySelector("#outcome").textContent === "grace");
    assert.equal(await local.textContent("#access"), "allow");
    const due = new Date(Math.floor(Date.parse(event.time) / 1000) * 1000 + policy.grace_seconds * 1000)
      .toISOString().replace(/\.\d{3}Z$/, "Z");
    assert.equal(due, "2026-11-27T17:15:00Z");
    assert.equal(await local.textContent("#due"), due);
    assert.equal(await local.getAttribute("#due", "datetime"), due);
    assert.equal(await local.textContent("#due-local"), "2026-11-28 02:15:00 Asia/Tokyo (UTC+09:00)");
    assert.match(await local.textContent("#grace-length"), /^4 h \(14400 s\)/);

    // Scheduled: the revocations the event gets without a grace period; nothing revoked now.
    const label = { office365: "Office 365", google_workspace: "Google Workspace" };
    const rows = await local.$$eval("#scheduled tbody tr", (trs) => trs.map((tr) => [...tr.cells].map((td) => td.textContent)));
    assert.deepEqual(rows, now.map((r) => [label[r.provider], r.subject]));
    assert.equal(await local.isVisible("#scheduled-panel"), true);
    assert.equal(await local.isVisible("#revocations"), false);
    assert.equal(await local.isVisible("#no-revocations"), true);
    assert.match(await local.textContent("#no-revocations"), /revoked now/);
    assert.deepEqual(await local.$$eval("#reasons > li", (lis) => lis.map((li) => li.dataset.rule)),
      ["blocking-action", "grace-period"]);
    mkdirSync(SHOTS, { recursive: true });
    await local.screenshot({ path: `${SHOTS}playground-grace.png` });

    // Without a time there is no grace period: revoked now, nothing scheduled, a warning says why.
    delete event.time;
    await local.fill("#event", JSON.stringify(event, null, 2));
    await local.waitForFunction(() => document.querySelector("#outcome").textContent === "revoke");
    assert.equal(await local.isVisible("#scheduled-panel"), false);
    assert.equal(await local.isVisible("#revocations"), true);
    assert.equal(await local.textContent("#warnings .path"), "event.time");
    assert.deepEqual(problems, []);
  } finally {
    await local.close();
  }
});
