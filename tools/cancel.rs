//! SIGINT/SIGTERM turn into a cancel flag the library polls, so an interrupted import or
//! convert removes its temporary image or file before the process exits.
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

/// A flag set by SIGINT or SIGTERM.
pub fn flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        // Registration only fails for forbidden signals; INT and TERM are allowed.
        let _ = signal_hook::flag::register(sig, flag.clone());
    }
    flag
}
