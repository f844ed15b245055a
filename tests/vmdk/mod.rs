//! The VMware-layout VMDK builder for the integration tests: the very file the unit tests use
//! (`src/testutil/vmdk.rs`), included from here so that library code never includes test code.
#[path = "../../src/testutil/vmdk.rs"]
mod builder;
#[allow(unused_imports)]
pub use builder::*;
