// Memory check of the JS package: 10^6 engine.evaluate calls over the shared mix; exits 1 if
// wasm linear memory grows after the first 10^4 calls or the GC'd JS heap grows by more than 4 MiB.
// Run: node --expose-gc wasm-plugin/js/bench/memory.mjs [--calls 1000000]
import { parseArgs } from "node:util";
import { loadMix, srs } from "./mix.mjs";

const { values: opts } = parseArgs({ options: { calls: { type: "string", default: "1000000" } } });
const CALLS = Number(opts.calls);
const SETTLE = 10_000; // calls after which nothing may grow any more
const HEAP_SLACK = 4 * 1024 * 1024;
if (!(CALLS >= SETTLE)) throw new Error(`--calls must be at least ${SETTLE}`);

if (typeof global.gc !== "function") {
  console.error("run with `node --expose-gc`: the heap is compared after a full collection");
  process.exit(2);
}

const { policy, events } = loadMix();
const engine = new srs.Engine(policy);
const MiB = (b) => (b / 1048576).toFixed(2).padStart(8);

function record(label, calls) {
  global.gc();
  const { heapUsed, rss } = process.memoryUsage();
  // wasmMemory() is the module's WebAssembly.Memory; byteLength is its linear memory size.
  const point = { label, calls, wasm: srs.wasmMemory().buffer.byteLength, heapUsed, rss };
  console.log(`${label.padEnd(14)} ${String(calls).padStart(8)} calls: wasm ${MiB(point.wasm)} MiB, heapUsed ${MiB(heapUsed)} MiB, rss ${MiB(rss)} MiB`);
  return point;
}

let answered = 0;
let settled;
const start = record("start", 0);
const t0 = process.hrtime.bigint();
for (let i = 0; i < CALLS; i++) {
  if (engine.evaluate(events[i % events.length]).type) answered++;
  if (i + 1 === SETTLE) settled = record("after 10^4", i + 1);
}
const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
const end = record("end", CALLS);
engine.free();

console.log(`${answered} answers in ${seconds.toFixed(1)} s (${((seconds * 1e9) / CALLS).toFixed(0)} ns/call incl. checkpoints)`);
const failures = [];
if (answered !== CALLS) failures.push(`only ${answered} of ${CALLS} calls answered`);
if (end.wasm > settled.wasm) failures.push(`wasm memory grew after 10^4 calls: ${settled.wasm} -> ${end.wasm} bytes`);
if (end.heapUsed - settled.heapUsed > HEAP_SLACK) failures.push(`heapUsed grew by ${MiB(end.heapUsed - settled.heapUsed).trim()} MiB after 10^4 calls (limit 4)`);
if (end.heapUsed - start.heapUsed > HEAP_SLACK) failures.push(`heapUsed grew by ${MiB(end.heapUsed - start.heapUsed).trim()} MiB since the start (limit 4)`);
for (const f of failures) console.log(`FAIL: ${f}`);
console.log(failures.length ? "memory check failed" : "memory check passed: no wasm growth after 10^4 calls, heap within 4 MiB");
process.exit(failures.length ? 1 : 0);
