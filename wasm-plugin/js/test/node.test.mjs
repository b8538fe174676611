// The Node build of the package: the third implementation of the vector
// runner, byte for byte against native policy-core, plus the SPEC §7 API.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";
import { readFileSync } from "node:fs";
import { loadNativeAnswers, loadVectors, root, summaryCase } from "./vectors.mjs";

const require = createRequire(import.meta.url);
const srs = require("srs-policy");
const vectors = loadVectors();
const native = loadNativeAnswers();
const example = JSON.parse(readFileSync(new URL("examples/policy.json", root), "utf8"));
const jailbroken = JSON.parse(readFileSync(new URL("examples/events/jailbroken-iphone.json", root), "utf8"));

test("every vector gives the native answer, byte for byte", () => {
  let compared = 0;
  for (const file of vectors) {
    assert.equal(native[file.name]?.length, file.cases.length, `${file.name}: native answers missing`);
    file.cases.forEach((c, i) => {
      const answer = JSON.stringify(srs.evaluate(file.policy, c.event));
      assert.equal(answer, native[file.name][i], `${file.name}: ${c.description}`);
      compared += 1;
    });
  }
  assert.ok(compared >= 60, `only ${compared} cases`);
});

test("the kept-policy Engine answers like evaluate under every valid policy", () => {
  for (const file of vectors) {
    if (srs.validatePolicy(file.policy).type !== "success") continue;
    const engine = new srs.Engine(file.policy);
    file.cases.forEach((c, i) => {
      assert.equal(JSON.stringify(engine.evaluate(c.event)), native[file.name][i], `${file.name}: ${c.description}`);
    });
    engine.free();
  }
});

test("validatePolicy accepts the example and lists every error of a bad one", () => {
  assert.deepEqual(srs.validatePolicy(example), {
    type: "success",
    policy: { providers: ["office365", "google_workspace"], mode: "enforce", grace_seconds: 0 },
    warnings: [],
  });
  const bad = srs.validatePolicy({ uem: "intune", deployment: "access", providers: [], extra: 1 });
  assert.equal(bad.type, "failure");
  assert.deepEqual(bad.errors.map((e) => e.path), ["policy.uem", "policy.providers", "policy.extra"]);
});

test("validatePolicy answers the policy summary, as srs_set_policy does", () => {
  const answer = srs.validatePolicy(summaryCase.policy);
  assert.deepEqual(answer, JSON.parse(summaryCase.answer));
  assert.equal(JSON.stringify(answer), summaryCase.answer);
  // Evaluations carry a decision, never the summary.
  const engine = new srs.Engine(example);
  assert.equal("policy" in engine.evaluate(jailbroken), false);
  assert.equal("policy" in srs.evaluate(example, jailbroken), false);
  engine.free();
});

// SPEC §4 step 3a: a blocking action under a policy with grace_seconds waits.
const GRACE = 14_400;
const gracePolicy = { ...example, grace_seconds: GRACE };
/** event.time + seconds as UTC `YYYY-MM-DDTHH:MM:SSZ`, by the JS Date clockwork. */
const dueAfter = (time, seconds) =>
  new Date(Math.floor(Date.parse(time) / 1000) * 1000 + seconds * 1000).toISOString().replace(/\.\d{3}Z$/, "Z");

test("a grace period schedules the revocations instead, in evaluate and Engine alike", () => {
  const now = srs.evaluate(example, jailbroken).decision;
  assert.equal(now.outcome, "revoke");
  assert.ok(now.revocations.length > 0);
  const due = dueAfter(jailbroken.time, GRACE);

  const engine = new srs.Engine(gracePolicy);
  for (const answer of [srs.evaluate(gracePolicy, jailbroken), engine.evaluate(jailbroken)]) {
    assert.equal(answer.type, "success", JSON.stringify(answer));
    const d = answer.decision;
    assert.equal(d.outcome, "grace");
    assert.equal(d.access, "allow");
    assert.deepEqual(d.revocations, []);
    assert.deepEqual(d.scheduled, { due, revocations: now.revocations });
    assert.deepEqual(d.reasons.map((r) => r.rule), ["blocking-action", "grace-period"]);
    assert.deepEqual(d.reasons[1].matched, [{ grace_seconds: GRACE, due }]);
    assert.deepEqual(answer.warnings, []);
  }
  assert.equal(JSON.stringify(engine.evaluate(jailbroken)), JSON.stringify(srs.evaluate(gracePolicy, jailbroken)));

  // A device state never waits, and without a time there is no grace period.
  const retired = { ...jailbroken, device: { ...jailbroken.device, state: "retired" } };
  const retiredDecision = engine.evaluate(retired).decision;
  assert.equal(retiredDecision.outcome, "revoke");
  assert.equal("scheduled" in retiredDecision, false);
  const { time: _, ...untimed } = jailbroken;
  const untimedAnswer = engine.evaluate(untimed);
  assert.equal(untimedAnswer.decision.outcome, "revoke");
  assert.equal("scheduled" in untimedAnswer.decision, false);
  assert.deepEqual(untimedAnswer.warnings.map((w) => [w.code, w.path]), [["missing-field", "event.time"]]);
  engine.free();
});

test("validatePolicy reports the grace period, and refuses one past 30 days", () => {
  const answer = srs.validatePolicy(gracePolicy);
  assert.equal(answer.type, "success", JSON.stringify(answer));
  assert.equal(answer.policy.grace_seconds, GRACE);
  assert.equal(srs.validatePolicy({ ...example, grace_seconds: 2_592_000 }).policy.grace_seconds, 2_592_000);
  const tooLong = srs.validatePolicy({ ...example, grace_seconds: 2_592_001 });
  assert.deepEqual(tooLong.errors.map((e) => [e.code, e.path]), [["invalid-value", "policy.grace_seconds"]]);
  assert.throws(() => new srs.Engine({ ...example, grace_seconds: -1 }), (e) => {
    assert.deepEqual(e.answer.errors.map((x) => x.path), ["policy.grace_seconds"]);
    return true;
  });
});

test("new Engine throws on an invalid policy, with the failure answer attached", () => {
  assert.throws(() => new srs.Engine({ uem: "epmm" }), (e) => {
    assert.ok(e instanceof Error);
    assert.equal(e.answer.type, "failure");
    assert.deepEqual(e.answer.errors.map((x) => x.code), ["missing-field", "missing-field"]);
    return true;
  });
});

test("plain objects in and out, and undefined is reported, not thrown", () => {
  const answer = srs.evaluate(example, jailbroken);
  assert.equal(Object.getPrototypeOf(answer), Object.prototype);
  assert.equal(answer.decision.outcome, "revoke");
  const missing = srs.evaluate(example, undefined);
  assert.deepEqual(missing.errors.map((e) => [e.code, e.path]), [["missing-field", "event"]]);
});

// Inputs cross into wasm as the text JSON.stringify makes of them, so they mean
// what JSON.stringify says they mean.
/** The message JSON.stringify throws for `value` in this engine. */
const thrownBy = (value) => {
  try {
    JSON.stringify(value);
  } catch (e) {
    return e.message;
  }
  assert.fail("JSON.stringify did not throw");
};
const malformed = (path, why) => ({
  type: "failure",
  errors: [{ code: "malformed-json", path, message: `input is not JSON data: ${why}` }],
});
const noText = "it has no JSON text (a function or a symbol)";

test("text beyond ASCII crosses intact: 2-, 3- and 4-byte UTF-8, matched case-insensitively", () => {
  const policy = { ...example, exempt_users: ["ÜSER-東@Éxample.com"] };
  const engine = new srs.Engine(policy);
  const name = "Politique « Jailbreak » 😀";
  const event = {
    ...jailbroken,
    id: "évt-😀",
    user: { upn: "üser-東@éxample.com" },
    compliance: { compliant: false, violations: [{ policy: name }] },
  };
  const unknown = engine.evaluate(event);
  assert.deepEqual(unknown.errors.map((e) => e.path), ["event.compliance.violations[0].policy"]);
  assert.ok(unknown.errors[0].message.includes(`\`${name}\``), unknown.errors[0].message);
  event.compliance.violations[0].actions = ["block"];
  const exempt = engine.evaluate(event);
  assert.equal(exempt.decision.outcome, "no_action");
  assert.deepEqual(exempt.decision.reasons.at(-1).matched, [{ user: "üser-東@éxample.com" }]);
  assert.deepEqual(exempt, srs.evaluate(policy, event));
  // JSON.stringify writes a lone surrogate as a `\ud800` escape, which JSON
  // text may not decode to: malformed, as in every other runtime.
  const lone = engine.evaluate({ ...event, id: "evt-\ud800" });
  assert.deepEqual(lone.errors.map((e) => [e.code, e.path]), [["malformed-json", "event"]]);
  engine.free();
});

test("a property whose value is undefined is left out, as JSON.stringify leaves it out", () => {
  const engine = new srs.Engine(gracePolicy);
  const { time: _, ...untimed } = jailbroken;
  const expected = srs.evaluate(gracePolicy, untimed);
  assert.deepEqual(expected.warnings.map((w) => [w.code, w.path]), [["missing-field", "event.time"]]);
  const undefinedTime = { ...jailbroken, time: undefined };
  assert.deepEqual(srs.evaluate(gracePolicy, undefinedTime), expected);
  assert.deepEqual(engine.evaluate(undefinedTime), expected);
  // Not an unknown field either: it is not there.
  const extra = { ...jailbroken, extra: undefined, device: { ...jailbroken.device, note: undefined } };
  assert.deepEqual(engine.evaluate(extra), engine.evaluate(jailbroken));
  assert.deepEqual(srs.validatePolicy({ ...example, grace_seconds: undefined }), srs.validatePolicy(example));
  engine.free();
});

test("NaN is null and a Date is its ISO text, as JSON.stringify writes them", () => {
  assert.deepEqual(srs.validatePolicy({ ...example, grace_seconds: NaN }), srs.validatePolicy({ ...example, grace_seconds: null }));
  const engine = new srs.Engine(example);
  const time = new Date(Date.parse(jailbroken.time));
  assert.deepEqual(engine.evaluate({ ...jailbroken, time }), engine.evaluate({ ...jailbroken, time: time.toISOString() }));
  engine.free();
});

test("a BigInt is malformed-json at the input it is in", () => {
  const why = thrownBy(1n);
  const event = { ...jailbroken, id: 1n };
  assert.deepEqual(srs.evaluate(example, event), malformed("event", why));
  const engine = new srs.Engine(example);
  assert.deepEqual(engine.evaluate(event), malformed("event", why));
  engine.free();
  const policy = { ...example, grace_seconds: 60n };
  assert.deepEqual(srs.validatePolicy(policy), malformed("policy", why));
  assert.throws(() => new srs.Engine(policy), (e) => {
    assert.deepEqual(e.answer, malformed("policy", why));
    return true;
  });
  // Both inputs' errors, policy first, as before.
  assert.deepEqual(srs.evaluate(policy, undefined), {
    type: "failure",
    errors: [
      malformed("policy", why).errors[0],
      { code: "missing-field", path: "event", message: "`event` is required" },
    ],
  });
});

test("a cyclic object is malformed-json, not a stack overflow", () => {
  const event = { ...jailbroken, device: { ...jailbroken.device } };
  event.device.owner = event;
  const why = thrownBy(event);
  assert.deepEqual(srs.evaluate(example, event), malformed("event", why));
  const engine = new srs.Engine(example);
  assert.deepEqual(engine.evaluate(event), malformed("event", why));
  engine.free();
  const policy = { ...example };
  policy.self = policy;
  assert.deepEqual(srs.validatePolicy(policy), malformed("policy", thrownBy(policy)));
});

test("a function or a symbol as the input is malformed-json; as a property it is left out", () => {
  const engine = new srs.Engine(example);
  for (const value of [() => jailbroken, Symbol("event")]) {
    assert.deepEqual(srs.evaluate(example, value), malformed("event", noText));
    assert.deepEqual(engine.evaluate(value), malformed("event", noText));
    assert.deepEqual(srs.validatePolicy(value), malformed("policy", noText));
  }
  assert.deepEqual(engine.evaluate({ ...jailbroken, callback() {} }), engine.evaluate(jailbroken));
  engine.free();
});

test("version() is the package version", () => {
  const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
  assert.equal(srs.version(), pkg.version);
});

test("loads as ESM too", async () => {
  const esm = await import("srs-policy");
  assert.equal(esm.evaluate(example, jailbroken).decision.outcome, "revoke");
});

test("200,000 engine.evaluate calls do not grow memory", () => {
  const engine = new srs.Engine(example);
  const memory = srs.wasmMemory();
  for (let i = 0; i < 2_000; i++) engine.evaluate(jailbroken); // warm up the allocator
  const before = memory.buffer.byteLength;
  const heapBefore = process.memoryUsage().heapUsed;
  for (let i = 0; i < 200_000; i++) {
    const answer = engine.evaluate(jailbroken);
    if (answer.type !== "success") assert.fail(JSON.stringify(answer));
  }
  globalThis.gc?.();
  assert.equal(memory.buffer.byteLength, before, "wasm linear memory grew");
  const heapGrowth = process.memoryUsage().heapUsed - heapBefore;
  assert.ok(heapGrowth < 64 * 1024 * 1024, `JS heap grew by ${heapGrowth} bytes`);
  engine.free();
});
