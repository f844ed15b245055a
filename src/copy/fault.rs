//! Failures injected into the engine by tests, so the paths that must never publish a short or
//! unchecked image are exercised end to end (through the CLI, against a real cluster).
//!
//! `RBDKIT_INJECT_FAULT=POINT` makes the engine fail at `POINT`. The test suite runs the release
//! binary, so every build reads it: a variable the user sets in their own environment, read
//! once, that can only make a copy fail.

/// Where a failure can be injected.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Fault {
    /// A decode job panics instead of sending its piece.
    DecodePanic,
    /// The producer stops before the end of the disk and reports success: every piece after
    /// the first is lost on its way to the consumer (a filter on the channel, so producers
    /// pay nothing for it), the producer's end still arrives.
    ProducerStopsEarly,
    /// The producer thread panics.
    ProducerPanic,
    /// The hasher thread panics.
    HasherPanic,
    /// What a backup reads back differs from what it wrote (a corrupting disk or network):
    /// the digest of the first block read back is altered.
    ReadBackDiffers,
}

impl Fault {
    fn name(self) -> &'static str {
        match self {
            Fault::DecodePanic => "decode-panic",
            Fault::ProducerStopsEarly => "producer-stops-early",
            Fault::ProducerPanic => "producer-panic",
            Fault::HasherPanic => "hasher-panic",
            Fault::ReadBackDiffers => "read-back-differs",
        }
    }
}

/// True when the environment asks for `fault`.
pub(crate) fn injected(fault: Fault) -> bool {
    static ASKED: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    ASKED
        .get_or_init(|| std::env::var("RBDKIT_INJECT_FAULT").ok())
        .as_deref()
        == Some(fault.name())
}
