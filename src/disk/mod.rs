//! Virtual disks as the reading side sees them: a size, extents in guest order and bytes at
//! guest offsets. Formats: raw files and streams (`raw`), qcow2 (`qcow2`).
//! Nothing here writes; nothing here trusts a size or offset read from a file.
pub mod source;

pub use source::{DiskSource, Extent, ExtentKind};
