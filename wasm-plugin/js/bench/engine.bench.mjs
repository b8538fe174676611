// Node speed of the JS package over the shared mix: engine.evaluate (kept policy) vs one-shot evaluate.
// Run: node wasm-plugin/js/bench/engine.bench.mjs [--samples 10] [--json target/bench/node.json]
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { parseArgs } from "node:util";
import { loadMix, srs } from "./mix.mjs";

const { values: opts } = parseArgs({ options: { json: { type: "string" }, samples: { type: "string", default: "10" } } });
const SAMPLES = Number(opts.samples);
const WARMUP_NS = 300e6; // warm-up per case, also sizes the samples
const SAMPLE_NS = 100e6; // target length of one sample

const { policy, events } = loadMix();
const engine = new srs.Engine(policy);

// Sanity: both paths give the same answers; show what the mix decides.
const outcomes = {};
for (const event of events) {
  const kept = JSON.stringify(engine.evaluate(event));
  if (kept !== JSON.stringify(srs.evaluate(policy, event))) throw new Error(`engine.evaluate and evaluate differ on ${event.id}`);
  const answer = JSON.parse(kept);
  const key = answer.type === "success" ? answer.decision.outcome : "failure";
  outcomes[key] = (outcomes[key] ?? 0) + 1;
}

const now = process.hrtime.bigint;
let sink = 0;

// Runs `call(event, index)` round-robin over the mix: warm-up, then SAMPLES timed samples of N calls.
function bench(name, call) {
  let calls = 0;
  const start = now();
  while (Number(now() - start) < WARMUP_NS) {
    const k = calls++ % events.length;
    sink += call(events[k], k) ? 1 : 0;
  }
  const estimate = Number(now() - start) / calls;
  const n = Math.max(events.length, Math.round(SAMPLE_NS / estimate / events.length) * events.length);
  const perCall = [];
  for (let s = 0; s < SAMPLES; s++) {
    const t = now();
    for (let i = 0; i < n; i++) {
      const k = i % events.length;
      sink += call(events[k], k) ? 1 : 0;
    }
    perCall.push(Number(now() - t) / n);
  }
  perCall.sort((a, b) => a - b);
  const mid = perCall.length >> 1;
  const median = perCall.length % 2 ? perCall[mid] : (perCall[mid - 1] + perCall[mid]) / 2;
  return { name, calls_per_sample: n, samples: SAMPLES, median_ns: median, min_ns: perCall[0], max_ns: perCall.at(-1) };
}

// The floor under engine.evaluate: the JSON text in and the answer object
// out, which every call pays in JavaScript before and after the wasm.
const answerTexts = events.map((e) => JSON.stringify(engine.evaluate(e)));

const results = [
  bench("engine.evaluate(event)", (e) => engine.evaluate(e)),
  bench("evaluate(policy, event)", (e) => srs.evaluate(policy, e)),
  bench("new Engine(policy) + free", () => { new srs.Engine(policy).free(); return 1; }),
  bench("JSON.stringify(event)", (e) => JSON.stringify(e)),
  bench("JSON.parse(answer text)", (_, k) => JSON.parse(answerTexts[k])),
];
engine.free();

const fmt = (ns) => ns.toFixed(0).padStart(9);
console.log(`srs-policy ${srs.version()} on Node ${process.version}: ${events.length} events, outcomes ${JSON.stringify(outcomes)}`);
console.log(`${"case".padEnd(28)} ${"median ns".padStart(9)} ${"min ns".padStart(9)} ${"max ns".padStart(9)} ${"calls/s".padStart(10)}  samples x calls`);
for (const r of results) {
  const rate = (1e9 / r.median_ns).toFixed(0).padStart(10);
  console.log(`${r.name.padEnd(28)} ${fmt(r.median_ns)} ${fmt(r.min_ns)} ${fmt(r.max_ns)} ${rate}  ${r.samples} x ${r.calls_per_sample}`);
}
if (sink === -1) console.log(sink); // keeps the results observable

if (opts.json) {
  mkdirSync(dirname(opts.json), { recursive: true });
  const report = { package_version: srs.version(), node: process.version, events: events.length, outcomes, results };
  writeFileSync(opts.json, JSON.stringify(report, null, 2) + "\n");
  console.log(`wrote ${opts.json}`);
}
