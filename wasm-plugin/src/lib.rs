//! policy-core as an import-free core wasm module: the ABI of SPEC §6, version 1.
//!
//! A thin shell: every export hands bytes to policy-core and hands its JSON
//! answer back. Build it with `cargo build -p wasm-plugin --features small
//! --target wasm32-unknown-unknown --profile wasm` (host-runner's build
//! script does this and embeds the result in `srs`; without `small` the
//! module is larger, with the same answers).
//!
//! With the `js` feature the same functions are a wasm-bindgen package
//! instead (SPEC §7, `src/js.rs`), built by `scripts/build-js`.
//!
//! Buffers cross the boundary as exact-length boxed slices: `srs_alloc(len)`
//! and every answer are `Box<[u8]>` of that length, which `srs_free(ptr, len)`
//! releases. Passing `srs_free` anything else is the caller's bug; it can only
//! corrupt this instance's own memory, which the host sandboxes.

use std::cell::RefCell;

use policy_core::{Diagnostic, Engine, ErrorCode};

/// The ABI version this module implements.
pub const ABI_VERSION: i32 = 1;

thread_local! {
    /// The policy kept by `srs_set_policy` for `srs_evaluate_event`.
    static KEPT: RefCell<Option<Engine>> = const { RefCell::new(None) };
}

/// Evaluates a request envelope `{"policy": …, "event": …}`.
pub fn evaluate(request: &[u8]) -> String {
    policy_core::evaluate_json_bytes(request)
}

/// Validates and keeps a policy; a failure drops any policy kept before.
pub fn set_policy(policy: &[u8]) -> String {
    let (kept, answer) = Engine::keep_json(policy);
    KEPT.with(|k| *k.borrow_mut() = kept);
    answer
}

/// Evaluates an event against the kept policy.
pub fn evaluate_event(event: &[u8]) -> String {
    KEPT.with(|k| match &*k.borrow() {
        Some(engine) => engine.answer_json(event),
        None => policy_core::failure_json(&[Diagnostic {
            code: ErrorCode::MissingField,
            path: "policy".to_owned(),
            message: "no policy is kept; call srs_set_policy first".to_owned(),
        }]),
    })
}

#[cfg(feature = "js")]
mod js;

#[cfg(target_family = "wasm")]
#[expect(unsafe_code, reason = "an allocator hands out raw memory")]
mod heap;

/// Every wasm build's allocator, in place of dlmalloc (see `heap`).
#[cfg(target_family = "wasm")]
#[global_allocator]
static HEAP: heap::Heap = heap::Heap::new();

#[cfg(all(target_family = "wasm", not(feature = "js")))]
#[expect(unsafe_code, reason = "the core ABI passes raw guest pointers")]
mod abi {
    //! The raw exports. Pointers are offsets into this module's own memory.

    /// `() -> i32`: the ABI version, 1.
    #[unsafe(no_mangle)]
    pub extern "C" fn srs_abi_version() -> i32 {
        super::ABI_VERSION
    }

    /// `(len: i32) -> i32`: a zeroed buffer of exactly `len` bytes; 0 if `len` < 0.
    #[unsafe(no_mangle)]
    pub extern "C" fn srs_alloc(len: i32) -> i32 {
        let Ok(len) = usize::try_from(len) else {
            return 0;
        };
        let buffer: Box<[u8]> = vec![0u8; len].into_boxed_slice();
        Box::into_raw(buffer).cast::<u8>() as i32
    }

    /// `(ptr: i32, len: i32)`: releases a buffer from `srs_alloc` or an answer.
    #[unsafe(no_mangle)]
    pub extern "C" fn srs_free(ptr: i32, len: i32) {
        let Ok(len) = usize::try_from(len) else {
            return;
        };
        if ptr == 0 {
            return;
        }
        let slice = std::ptr::slice_from_raw_parts_mut(ptr as usize as *mut u8, len);
        // SAFETY: the caller passes back a (ptr, len) this module handed out as a Box<[u8]>.
        drop(unsafe { Box::from_raw(slice) });
    }

    /// `(ptr: i32, len: i32) -> i64`: evaluates a request envelope.
    #[unsafe(no_mangle)]
    pub extern "C" fn srs_evaluate(ptr: i32, len: i32) -> i64 {
        answer(super::evaluate(input(ptr, len)))
    }

    /// `(ptr: i32, len: i32) -> i64`: validates and keeps a policy.
    #[unsafe(no_mangle)]
    pub extern "C" fn srs_set_policy(ptr: i32, len: i32) -> i64 {
        answer(super::set_policy(input(ptr, len)))
    }

    /// `(ptr: i32, len: i32) -> i64`: evaluates an event against the kept policy.
    #[unsafe(no_mangle)]
    pub extern "C" fn srs_evaluate_event(ptr: i32, len: i32) -> i64 {
        answer(super::evaluate_event(input(ptr, len)))
    }

    /// The caller's request bytes; empty for a negative length or a null pointer.
    fn input<'a>(ptr: i32, len: i32) -> &'a [u8] {
        match usize::try_from(len) {
            Ok(len) if ptr != 0 && len > 0 => {
                // SAFETY: the caller wrote `len` bytes at `ptr`, in a buffer from srs_alloc.
                unsafe { std::slice::from_raw_parts(ptr as usize as *const u8, len) }
            }
            _ => &[],
        }
    }

    /// Leaks the answer as an exact-length box and packs `(ptr << 32) | len`.
    fn answer(json: String) -> i64 {
        let bytes: Box<[u8]> = json.into_bytes().into_boxed_slice();
        let len = bytes.len() as u64;
        let ptr = Box::into_raw(bytes).cast::<u8>() as usize as u64;
        ((ptr << 32) | (len & 0xffff_ffff)) as i64
    }
}
