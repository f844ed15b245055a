//! Bridges librbd's C progress callback to a Rust closure for resize and flatten.
use std::os::raw::{c_int, c_void};

/// A progress observer: `(done, total)`.
pub(crate) type ProgressFn<'a> = &'a mut dyn FnMut(u64, u64);

/// The C callback librbd calls; `arg` is a `*mut ProgressFn`.
pub(crate) unsafe extern "C" fn trampoline(offset: u64, total: u64, arg: *mut c_void) -> c_int {
    if arg.is_null() {
        return 0;
    }
    // SAFETY: arg is the `&mut ProgressFn` passed by `with_progress`, alive for the whole
    // synchronous librbd call that invokes us; librbd calls it from one thread at a time.
    let f = unsafe { &mut *(arg as *mut ProgressFn) };
    // A panic must not unwind into C.
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(offset, total)));
    0
}

/// Runs `call(callback, arg)` with a progress closure reachable through `arg`.
pub(crate) fn with_progress<R>(
    mut progress: ProgressFn<'_>,
    call: impl FnOnce(unsafe extern "C" fn(u64, u64, *mut c_void) -> c_int, *mut c_void) -> R,
) -> R {
    let arg = &mut progress as *mut ProgressFn as *mut c_void;
    call(trampoline, arg)
}
