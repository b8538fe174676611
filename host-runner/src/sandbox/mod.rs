//! The policy module in a sandboxed wasmtime: no imports, a memory cap, fuel
//! per call, bounded requests and answers, and every guest pointer checked.

pub mod cache;

use std::path::Path;

use wasmtime::{
    Config, Engine, ExternType, FuncType, Instance, InstanceAllocationStrategy, InstancePre,
    Linker, Memory, Module, PoolingAllocationConfig, ResourceLimiter, Store, StoreLimits,
    StoreLimitsBuilder, Trap, TypedFunc, ValType,
};

/// The ABI version this host speaks (SPEC §6).
pub const ABI_VERSION: i32 = 1;

/// The core module built from this workspace's wasm-plugin, embedded at build time.
pub static EMBEDDED_MODULE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/srs_policy.wasm"));

/// Limits every instance runs under; each has a safe default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Linear memory cap per instance, in bytes.
    pub max_memory: usize,
    /// Fuel (roughly, wasm instructions) for one call.
    pub fuel_per_call: u64,
    /// Largest request written into the guest, in bytes.
    pub max_request: usize,
    /// Largest answer read back from the guest, in bytes.
    pub max_answer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_memory: 64 << 20,
            fuel_per_call: 2_000_000_000,
            max_request: 4 << 20,
            max_answer: 4 << 20,
        }
    }
}

/// How a plugin's instances get their memory and runtime metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Allocated when an instance is created and freed when it is dropped
    /// (wasmtime's default).
    #[default]
    OnDemand,
    /// wasmtime's pooling allocator: address space for `instances` instances
    /// is reserved when the plugin is loaded, each memory capped at
    /// [`Limits::max_memory`], and creating an instance reuses a free slot.
    /// At most `instances` instances (the load's probe included) live at once;
    /// one more fails to instantiate. A module declaring more memory than the
    /// cap is refused when compiled ([`SandboxError::Compile`]), where
    /// on-demand loading refuses it as [`SandboxError::MemoryCap`].
    Pooling { instances: u32 },
}

/// Why a module was refused or a call did not give an answer.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    #[error("module is not valid WebAssembly: {0}")]
    Compile(String),
    #[error("module imports `{module}::{name}`; a policy module must import nothing")]
    Import { module: String, name: String },
    #[error("module lacks the export `{name}` ({signature}) of ABI version {ABI_VERSION}")]
    MissingExport {
        name: &'static str,
        signature: &'static str,
    },
    #[error("module export `{name}` is not {signature}")]
    ExportType {
        name: &'static str,
        signature: &'static str,
    },
    #[error("module reports ABI version {0}; this host speaks version {ABI_VERSION}")]
    AbiVersion(i32),
    #[error("module ran out of fuel: a call may use {0} units (fuel limit)")]
    OutOfFuel(u64),
    #[error("module tried to grow its memory past the {0}-byte cap (memory limit)")]
    MemoryCap(usize),
    #[error("module trapped: {0}")]
    Trap(String),
    #[error("request is {len} bytes; the host's request limit is {limit}")]
    RequestTooLarge { len: usize, limit: usize },
    #[error("answer is {len} bytes; the host's answer limit is {limit}")]
    AnswerTooLarge { len: usize, limit: usize },
    #[error("module returned a buffer at {ptr} of {len} bytes, outside its {memory}-byte memory")]
    OutOfBounds { ptr: u32, len: u32, memory: usize },
    #[error("answer is not UTF-8: {0}")]
    AnswerNotUtf8(std::str::Utf8Error),
}

/// Host state per store: memory limits, and whether the cap was hit.
struct HostState {
    limits: StoreLimits,
    max_memory: usize,
    hit_memory_cap: bool,
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if !allowed || desired > self.max_memory {
            self.hit_memory_cap = true;
            return Err(wasmtime::format_err!("memory cap reached"));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }
}

/// Declares a typed wrapper for one guest export: its name, its signature as
/// SPEC §6 states it, and the wasm types checked before instantiation.
macro_rules! guest_export {
    ($(#[$doc:meta])* $name:ident = $export:literal, $sig:literal,
     [$($p:ident),*] -> [$($r:ident),*], $params:ty => $results:ty) => {
        $(#[$doc])*
        struct $name(TypedFunc<$params, $results>);

        impl $name {
            const NAME: &'static str = $export;
            const SIGNATURE: &'static str = $sig;
            const PARAMS: &'static [ValType] = &[$(ValType::$p),*];
            const RESULTS: &'static [ValType] = &[$(ValType::$r),*];

            fn get(instance: &Instance, store: &mut Store<HostState>) -> Result<Self, SandboxError> {
                instance
                    .get_typed_func(store, Self::NAME)
                    .map(Self)
                    .map_err(|_| SandboxError::ExportType { name: Self::NAME, signature: Self::SIGNATURE })
            }
        }
    };
}

guest_export!(
    /// `srs_abi_version: () -> i32`, the ABI version.
    AbiVersion = "srs_abi_version", "() -> i32", [] -> [I32], () => i32
);
guest_export!(
    /// `srs_alloc: (len: i32) -> i32`, a buffer for a request.
    Alloc = "srs_alloc", "(len: i32) -> i32", [I32] -> [I32], i32 => i32
);
guest_export!(
    /// `srs_free: (ptr: i32, len: i32)`, releases a request buffer or an answer.
    Free = "srs_free", "(ptr: i32, len: i32)", [I32, I32] -> [], (i32, i32) => ()
);
guest_export!(
    /// `srs_evaluate: (ptr: i32, len: i32) -> i64`, a request envelope to a packed answer.
    Evaluate = "srs_evaluate", "(ptr: i32, len: i32) -> i64", [I32, I32] -> [I64], (i32, i32) => i64
);
guest_export!(
    /// `srs_set_policy: (ptr: i32, len: i32) -> i64`, keeps a policy; a packed answer.
    SetPolicy = "srs_set_policy", "(ptr: i32, len: i32) -> i64", [I32, I32] -> [I64], (i32, i32) => i64
);
guest_export!(
    /// `srs_evaluate_event: (ptr: i32, len: i32) -> i64`, an event to a packed answer.
    EvaluateEvent = "srs_evaluate_event", "(ptr: i32, len: i32) -> i64", [I32, I32] -> [I64], (i32, i32) => i64
);

/// Every function export of ABI version 1, checked before instantiation.
const EXPORTS: [(&str, &str, &[ValType], &[ValType]); 6] = [
    (
        AbiVersion::NAME,
        AbiVersion::SIGNATURE,
        AbiVersion::PARAMS,
        AbiVersion::RESULTS,
    ),
    (Alloc::NAME, Alloc::SIGNATURE, Alloc::PARAMS, Alloc::RESULTS),
    (Free::NAME, Free::SIGNATURE, Free::PARAMS, Free::RESULTS),
    (
        Evaluate::NAME,
        Evaluate::SIGNATURE,
        Evaluate::PARAMS,
        Evaluate::RESULTS,
    ),
    (
        SetPolicy::NAME,
        SetPolicy::SIGNATURE,
        SetPolicy::PARAMS,
        SetPolicy::RESULTS,
    ),
    (
        EvaluateEvent::NAME,
        EvaluateEvent::SIGNATURE,
        EvaluateEvent::PARAMS,
        EvaluateEvent::RESULTS,
    ),
];

/// A buffer in guest memory as the ABI passes it: a pointer and a length,
/// untrusted until checked against the memory's size.
#[derive(Debug, Clone, Copy)]
struct GuestSlice {
    ptr: u32,
    len: u32,
}

impl GuestSlice {
    /// Unpacks an answer's `(ptr << 32) | len`.
    fn unpack(packed: i64) -> Self {
        let packed = packed as u64;
        Self {
            ptr: (packed >> 32) as u32,
            len: packed as u32,
        }
    }

    /// The ABI's `(ptr: i32, len: i32)`: the same bits, reinterpreted.
    fn abi(self) -> (i32, i32) {
        (self.ptr as i32, self.len as i32)
    }

    /// The byte range, if it lies inside a memory of `memory` bytes.
    fn range(self, memory: usize) -> Result<std::ops::Range<usize>, SandboxError> {
        let start = self.ptr as usize;
        match start.checked_add(self.len as usize) {
            Some(end) if end <= memory => Ok(start..end),
            _ => Err(SandboxError::OutOfBounds {
                ptr: self.ptr,
                len: self.len,
                memory,
            }),
        }
    }
}

/// A checked, compiled module: compile once, instantiate cheaply per worker.
pub struct Plugin {
    engine: Engine,
    pre: InstancePre<HostState>,
    limits: Limits,
}

impl Plugin {
    /// The module embedded in this binary.
    pub fn embedded(limits: Limits) -> Result<Self, SandboxError> {
        Self::load(EMBEDDED_MODULE, limits)
    }

    /// Compiles and checks a module: refused if it imports anything, lacks an
    /// export of ABI version 1 or has one of the wrong type, or reports
    /// another ABI version.
    pub fn load(wasm: &[u8], limits: Limits) -> Result<Self, SandboxError> {
        Self::load_with(wasm, limits, Allocation::OnDemand)
    }

    /// [`Plugin::load`] with a choice of instance allocation.
    pub fn load_with(
        wasm: &[u8],
        limits: Limits,
        allocation: Allocation,
    ) -> Result<Self, SandboxError> {
        Self::build(wasm, limits, allocation, None)
    }

    /// [`Plugin::load`], keeping the compiled code in `cache_dir`: a later
    /// process with the same module, wasmtime and settings maps it instead of
    /// compiling. The directory must be the user's own: srs runs the native
    /// code it finds there (a directory or file that others may write is not
    /// read). A cache that cannot be read or written only costs a compile.
    pub fn load_cached(
        wasm: &[u8],
        limits: Limits,
        cache_dir: &Path,
    ) -> Result<Self, SandboxError> {
        Self::build(wasm, limits, Allocation::OnDemand, Some(cache_dir))
    }

    fn build(
        wasm: &[u8],
        limits: Limits,
        allocation: Allocation,
        cache_dir: Option<&Path>,
    ) -> Result<Self, SandboxError> {
        let mut config = Config::new();
        config.consume_fuel(true);
        if let Allocation::Pooling { instances } = allocation {
            let mut pool = PoolingAllocationConfig::new();
            pool.total_core_instances(instances)
                .total_memories(instances)
                .total_tables(instances)
                .max_memory_size(limits.max_memory);
            config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        }
        let engine = Engine::new(&config).map_err(|e| SandboxError::Compile(e.to_string()))?;
        let module = match cache_dir {
            Some(dir) => cache::load_or_compile(&engine, wasm, dir),
            None => Module::new(&engine, wasm),
        }
        .map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
        if let Some(import) = module.imports().next() {
            return Err(SandboxError::Import {
                module: import.module().to_owned(),
                name: import.name().to_owned(),
            });
        }
        check_exports(&module, &engine)?;
        let pre = Linker::new(&engine)
            .instantiate_pre(&module)
            .map_err(|e| SandboxError::Compile(format!("{e:#}")))?;
        let plugin = Self {
            engine,
            pre,
            limits,
        };
        let mut probe = plugin.instantiate()?;
        let version = probe.abi_version()?;
        if version != ABI_VERSION {
            return Err(SandboxError::AbiVersion(version));
        }
        Ok(plugin)
    }

    /// The limits instances of this plugin run under.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// A fresh instance with its own store and memory.
    pub fn instantiate(&self) -> Result<PluginInstance, SandboxError> {
        let state = HostState {
            limits: StoreLimitsBuilder::new()
                .memory_size(self.limits.max_memory)
                .instances(1)
                .build(),
            max_memory: self.limits.max_memory,
            hit_memory_cap: false,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s);
        store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| SandboxError::Trap(e.to_string()))?;
        let instance = self
            .pre
            .instantiate(&mut store)
            .map_err(|e| classify(e, &store, self.limits))?;
        let exports = Exports::get(&instance, &mut store)?;
        Ok(PluginInstance {
            store,
            exports,
            limits: self.limits,
            poisoned: false,
            request: None,
        })
    }
}

fn check_exports(module: &Module, engine: &Engine) -> Result<(), SandboxError> {
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => {}
        _ => {
            return Err(SandboxError::MissingExport {
                name: "memory",
                signature: "memory",
            });
        }
    }
    for (name, signature, params, results) in EXPORTS {
        let want = FuncType::new(engine, params.iter().cloned(), results.iter().cloned());
        match module.get_export(name) {
            Some(ExternType::Func(found)) if FuncType::eq(&found, &want) => {}
            Some(_) => return Err(SandboxError::ExportType { name, signature }),
            None => return Err(SandboxError::MissingExport { name, signature }),
        }
    }
    Ok(())
}

/// The typed exports of one instance.
struct Exports {
    memory: Memory,
    abi_version: AbiVersion,
    alloc: Alloc,
    free: Free,
    evaluate: Evaluate,
    set_policy: SetPolicy,
    evaluate_event: EvaluateEvent,
}

impl Exports {
    fn get(instance: &Instance, store: &mut Store<HostState>) -> Result<Self, SandboxError> {
        let memory =
            instance
                .get_memory(&mut *store, "memory")
                .ok_or(SandboxError::MissingExport {
                    name: "memory",
                    signature: "memory",
                })?;
        Ok(Self {
            memory,
            abi_version: AbiVersion::get(instance, store)?,
            alloc: Alloc::get(instance, store)?,
            free: Free::get(instance, store)?,
            evaluate: Evaluate::get(instance, store)?,
            set_policy: SetPolicy::get(instance, store)?,
            evaluate_event: EvaluateEvent::get(instance, store)?,
        })
    }
}

/// Which answer-returning export to call.
#[derive(Clone, Copy)]
enum Call {
    Evaluate,
    SetPolicy,
    EvaluateEvent,
}

/// One instance, reused across calls until a call fails: after a trap, running
/// out of fuel or any broken answer it is poisoned and must be replaced.
pub struct PluginInstance {
    store: Store<HostState>,
    exports: Exports,
    limits: Limits,
    poisoned: bool,
    /// A buffer from `srs_alloc` kept for the next request: the caller
    /// frees what it allocates (SPEC §6), so it may write the next request
    /// into it instead, two calls fewer per request.
    request: Option<GuestSlice>,
}

impl PluginInstance {
    /// Whether a call failed; a poisoned instance is never used again.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// The size of the guest's linear memory, in bytes (64 KiB pages).
    pub fn memory_size(&self) -> usize {
        self.exports.memory.data_size(&self.store)
    }

    /// `srs_abi_version`.
    pub fn abi_version(&mut self) -> Result<i32, SandboxError> {
        self.refuel()?;
        let result = self.exports.abi_version.0.call(&mut self.store, ());
        result.map_err(|e| self.fail(e))
    }

    /// `srs_evaluate`: a request envelope `{"policy": …, "event": …}`.
    pub fn evaluate(&mut self, request: &[u8]) -> Result<String, SandboxError> {
        self.call(Call::Evaluate, request)
    }

    /// `srs_set_policy`: validate and keep a policy in this instance.
    pub fn set_policy(&mut self, policy: &[u8]) -> Result<String, SandboxError> {
        self.call(Call::SetPolicy, policy)
    }

    /// `srs_evaluate_event`: an event against the kept policy.
    pub fn evaluate_event(&mut self, event: &[u8]) -> Result<String, SandboxError> {
        self.call(Call::EvaluateEvent, event)
    }

    fn call(&mut self, which: Call, input: &[u8]) -> Result<String, SandboxError> {
        if self.poisoned {
            return Err(SandboxError::Trap(
                "instance was poisoned by an earlier failure".to_owned(),
            ));
        }
        let result = self.call_inner(which, input);
        if result.is_err() {
            self.poisoned = true;
        }
        result
    }

    fn call_inner(&mut self, which: Call, input: &[u8]) -> Result<String, SandboxError> {
        let limit = self.limits.max_request;
        let len = u32::try_from(input.len())
            .ok()
            .filter(|_| input.len() <= limit);
        let len = len.ok_or(SandboxError::RequestTooLarge {
            len: input.len(),
            limit,
        })?;
        self.refuel()?;
        let request = GuestSlice {
            ptr: self.request_buffer(len)?.ptr,
            len,
        };
        let range = request.range(self.exports.memory.data_size(&self.store))?;
        if let Some(buffer) = self.exports.memory.data_mut(&mut self.store).get_mut(range) {
            buffer.copy_from_slice(input);
        }
        let func = match which {
            Call::Evaluate => &self.exports.evaluate.0,
            Call::SetPolicy => &self.exports.set_policy.0,
            Call::EvaluateEvent => &self.exports.evaluate_event.0,
        };
        let packed = func
            .call(&mut self.store, request.abi())
            .map_err(|e| self.fail(e))?;

        let answer = GuestSlice::unpack(packed);
        let limit = self.limits.max_answer;
        if answer.len as usize > limit {
            return Err(SandboxError::AnswerTooLarge {
                len: answer.len as usize,
                limit,
            });
        }
        let range = answer.range(self.exports.memory.data_size(&self.store))?;
        let bytes = self
            .exports
            .memory
            .data(&self.store)
            .get(range)
            .unwrap_or_default()
            .to_vec();
        self.exports
            .free
            .0
            .call(&mut self.store, answer.abi())
            .map_err(|e| self.fail(e))?;
        String::from_utf8(bytes).map_err(|e| SandboxError::AnswerNotUtf8(e.utf8_error()))
    }

    /// The kept request buffer, at least `len` bytes: a bigger one (at
    /// least [`Self::REQUEST_BUFFER`]) replaces it when it is too small.
    fn request_buffer(&mut self, len: u32) -> Result<GuestSlice, SandboxError> {
        match self.request.take() {
            Some(kept) if kept.len >= len => {
                self.request = Some(kept);
                return Ok(kept);
            }
            Some(small) => self
                .exports
                .free
                .0
                .call(&mut self.store, small.abi())
                .map_err(|e| self.fail(e))?,
            None => {}
        }
        let len = len.max(Self::REQUEST_BUFFER);
        let ptr = self
            .exports
            .alloc
            .0
            .call(&mut self.store, len as i32)
            .map_err(|e| self.fail(e))?;
        let kept = GuestSlice {
            ptr: ptr as u32,
            len,
        };
        self.request = Some(kept);
        Ok(kept)
    }

    /// The smallest request buffer kept: most events fit.
    const REQUEST_BUFFER: u32 = 4096;

    fn refuel(&mut self) -> Result<(), SandboxError> {
        self.store
            .set_fuel(self.limits.fuel_per_call)
            .map_err(|e| SandboxError::Trap(e.to_string()))
    }

    fn fail(&mut self, error: wasmtime::Error) -> SandboxError {
        self.poisoned = true;
        classify(error, &self.store, self.limits)
    }
}

/// Names the limit a failed call ran into, if any.
fn classify(error: wasmtime::Error, store: &Store<HostState>, limits: Limits) -> SandboxError {
    if store.data().hit_memory_cap {
        return SandboxError::MemoryCap(limits.max_memory);
    }
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => SandboxError::OutOfFuel(limits.fuel_per_call),
        _ => SandboxError::Trap(format!("{error:#}")),
    }
}

/// One worker's view of a plugin: an instance reused across calls, replaced by
/// a fresh one after any failure. The kept policy is set again on the new one.
pub struct Worker<'p> {
    plugin: &'p Plugin,
    instance: Option<PluginInstance>,
    policy: Option<Vec<u8>>,
}

impl<'p> Worker<'p> {
    pub fn new(plugin: &'p Plugin) -> Self {
        Self {
            plugin,
            instance: None,
            policy: None,
        }
    }

    /// `srs_evaluate` on a healthy instance.
    pub fn evaluate(&mut self, request: &[u8]) -> Result<String, SandboxError> {
        self.instance()?.evaluate(request)
    }

    /// `srs_set_policy`, remembered for the instances that replace this one.
    pub fn set_policy(&mut self, policy: &[u8]) -> Result<String, SandboxError> {
        self.policy = None;
        let answer = self.instance()?.set_policy(policy)?;
        self.policy = Some(policy.to_vec());
        Ok(answer)
    }

    /// `srs_evaluate_event` against the policy set through this worker.
    pub fn evaluate_event(&mut self, event: &[u8]) -> Result<String, SandboxError> {
        self.instance()?.evaluate_event(event)
    }

    /// The current instance's linear memory size in bytes; `None` until this
    /// worker has an instance.
    pub fn memory_size(&self) -> Option<usize> {
        self.instance.as_ref().map(PluginInstance::memory_size)
    }

    fn instance(&mut self) -> Result<&mut PluginInstance, SandboxError> {
        if self
            .instance
            .as_ref()
            .is_some_and(PluginInstance::is_poisoned)
        {
            self.instance = None;
        }
        let instance = match self.instance.take() {
            Some(instance) => instance,
            None => {
                let mut fresh = self.plugin.instantiate()?;
                if let Some(policy) = &self.policy {
                    fresh.set_policy(policy)?;
                }
                fresh
            }
        };
        Ok(self.instance.insert(instance))
    }
}
impl std::fmt::Debug for Plugin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugin")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for PluginInstance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginInstance")
            .field("limits", &self.limits)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for Worker<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("plugin", self.plugin)
            .field("instance", &self.instance)
            .field("policy_kept", &self.policy.is_some())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{Limits, Plugin, Worker};

    const POLICY: &str =
        r#"{"uem":"epmm","deployment":"access","providers":["google_workspace","office365"]"#;
    const EVENT: &str = r#"{"id":"e1","time":"2026-11-27T10:15:00.250+02:00","device":{"id":"d1","state":"active"},"user":{"upn":"a@example.com"},"compliance":{"compliant":false,"violations":[{"policy":"jailbreak","actions":["Block"]}]}}"#;

    fn native_summary(policy: &str) -> String {
        match policy_core::Engine::from_json(policy.as_bytes()) {
            Ok(engine) => engine.accepted().to_json(),
            Err(failure) => failure.to_json(),
        }
    }

    /// `srs_set_policy` in the embedded module reports the policy's
    /// `grace_seconds` in its summary (SPEC §6), and the kept policy's grace
    /// period applies to `srs_evaluate_event`: as policy-core answers natively.
    #[test]
    fn set_policy_summary_reports_grace_seconds_and_the_kept_policy_waits() {
        let plugin = Plugin::embedded(Limits::default()).unwrap();
        let mut worker = Worker::new(&plugin);
        for (field, grace, due) in [
            ("", 0, None),
            (r#","grace_seconds":0"#, 0, None),
            (r#","grace_seconds":1"#, 1, Some("2026-11-27T08:15:01Z")),
            (
                r#","grace_seconds":14400"#,
                14_400,
                Some("2026-11-27T12:15:00Z"),
            ),
            (
                r#","grace_seconds":2592000"#,
                2_592_000,
                Some("2026-12-27T08:15:00Z"),
            ),
        ] {
            let policy = format!("{POLICY}{field}}}");
            let answer = worker.set_policy(policy.as_bytes()).unwrap();
            assert_eq!(answer, native_summary(&policy), "{policy}");
            let summary: serde_json::Value = serde_json::from_str(&answer).unwrap();
            assert_eq!(summary["type"], "success", "{answer}");
            assert_eq!(summary["policy"]["grace_seconds"], grace, "{answer}");

            let answer = worker.evaluate_event(EVENT.as_bytes()).unwrap();
            let request = format!(r#"{{"policy":{policy},"event":{EVENT}}}"#);
            assert_eq!(answer, policy_core::evaluate_json_str(&request), "{policy}");
            let decision = &serde_json::from_str::<serde_json::Value>(&answer).unwrap()["decision"];
            match due {
                None => {
                    assert_eq!(decision["outcome"], "revoke", "{answer}");
                    assert!(decision.get("scheduled").is_none(), "{answer}");
                }
                Some(due) => {
                    assert_eq!(decision["outcome"], "grace", "{answer}");
                    assert_eq!(decision["access"], "allow", "{answer}");
                    assert_eq!(decision["revocations"], serde_json::json!([]), "{answer}");
                    assert_eq!(decision["scheduled"]["due"], due, "{answer}");
                    assert_eq!(
                        decision["scheduled"]["revocations"],
                        serde_json::json!([
                            {"provider": "google_workspace", "subject": "a@example.com"},
                            {"provider": "office365", "subject": "a@example.com"},
                        ]),
                        "{answer}"
                    );
                }
            }
        }
        // Past 30 days the policy is refused, and the module keeps no policy.
        let policy = format!(r#"{POLICY},"grace_seconds":2592001}}"#);
        let answer = worker.set_policy(policy.as_bytes()).unwrap();
        assert_eq!(answer, native_summary(&policy));
        assert!(
            answer.contains(r#""path":"policy.grace_seconds""#),
            "{answer}"
        );
        let answer = worker.evaluate_event(EVENT.as_bytes()).unwrap();
        assert!(answer.starts_with(r#"{"type":"failure""#), "{answer}");
    }
}
