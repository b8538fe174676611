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
