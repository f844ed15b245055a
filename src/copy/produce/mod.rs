//! The producers: what walks an input and hands its pieces to the pipeline.
#[cfg(feature = "rbd")]
pub(crate) mod diff_stream;
pub(crate) mod disk;
pub(crate) mod qcow2_stream;
pub(crate) mod raw_stream;
pub(crate) mod vmdk_stream;
