//! Helpers for the unit tests only (compiled under `cfg(test)`); never part of the library.
pub(crate) mod qemu;
pub(crate) mod vmdk;
