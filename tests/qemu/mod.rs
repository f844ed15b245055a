//! The qemu-img/qemu-io fixtures for the integration tests: the very file the unit tests use
//! (`src/testutil/qemu.rs`), included from here so that library code never includes test code.
#[path = "../../src/testutil/qemu.rs"]
mod fixtures;
#[allow(unused_imports)]
pub use fixtures::*;
