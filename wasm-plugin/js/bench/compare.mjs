// Node builds of the package side by side: each directory is a `node/` build
// (scripts/build-js's output, copied aside); their engines run the shared
// mix in turn, in one process, so they share the machine's load.
// Run: node wasm-plugin/js/bench/compare.mjs DIR... [--rounds 7] [--calls 100000]
import { createRequire } from "node:module";
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { loadMix } from "./mix.mjs";

const { values: opts, positionals: dirs } = parseArgs({
  allowPositionals: true,
  options: { rounds: { type: "string", default: "7" }, calls: { type: "string", default: "100000" } },
});
if (dirs.length === 0) {
  console.error("usage: node compare.mjs DIR... (each a node/ build of the package)");
  process.exit(2);
}
const ROUNDS = Number(opts.rounds);
const CALLS = Number(opts.calls);
const require = createRequire(import.meta.url);
const { policy, events } = loadMix();
const engines = dirs.map((dir) => new (require(resolve(dir, "srs_policy.js")).Engine)(policy));

// The builds must agree before their speed means anything.
for (const event of events) {
  const answers = new Set(engines.map((engine) => JSON.stringify(engine.evaluate(event))));
  if (answers.size !== 1) throw new Error(`the builds answer ${event.id} differently`);
}

const now = process.hrtime.bigint;
let sink = 0;
const perCall = dirs.map(() => []);
for (let round = 0; round < ROUNDS; round++) {
  engines.forEach((engine, k) => {
    for (let i = 0; i < CALLS / 5; i++) sink += engine.evaluate(events[i % events.length]) ? 1 : 0;
    const t = now();
    for (let i = 0; i < CALLS; i++) sink += engine.evaluate(events[i % events.length]) ? 1 : 0;
    perCall[k].push(Number(now() - t) / CALLS);
  });
}
console.log(`engine.evaluate, ${ROUNDS} alternating rounds of ${CALLS} calls each, ns per call:`);
dirs.forEach((dir, k) => {
  const sorted = perCall[k].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1];
  console.log(`${dir.padEnd(40)} median ${median.toFixed(0).padStart(6)}  min ${sorted[0].toFixed(0).padStart(6)}`);
});
if (sink === -1) console.log(sink);
