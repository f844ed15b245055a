//! rbdkit: the Ceph RBD / NFS data path of OpenStack clouds, as a library.
//!
//! - [`disk`]: read virtual disks (raw, qcow2) as extents and bytes at guest offsets.
//! - [`copy`]: the one copy engine behind `convert` (to a sparse file) and `import-raw` (to RBD).
//! - [`ceph`] (feature `rbd`): the only code that touches librados/librbd.
//! - [`gluster`] (feature `gluster`): the only code that touches libgfapi.
//! - [`iscsi`] (feature `iscsi`): the only code that touches libiscsi.
//! - [`backup`] (feature `rbd`): Cinder-style full and incremental volume backups, restores.
//! - [`clone`]: the Cinder clone workflow. [`pg`]: pg_num and capacity planning.
//! - [`bench`]: I/O benchmarks of RBD images, files, NFS shares, GlusterFS volumes and iSCSI LUNs.
//! - [`text`]: text taken from an input, escaped before it reaches a terminal.
//!
//! The library never prints and never exits the process; `tools/` does both.
#![warn(missing_docs)]

#[cfg(feature = "rbd")]
pub mod backup;
pub mod copy;
pub mod disk;
pub mod error;
#[cfg(feature = "gluster")]
pub mod gluster;
pub mod input;
#[cfg(feature = "iscsi")]
pub mod iscsi;
pub mod nfs;
pub mod output;
pub mod text;
pub mod units;
pub mod zero;

pub mod bench;
#[cfg(feature = "rbd")]
pub mod ceph;
#[cfg(feature = "rbd")]
pub mod clone;
#[cfg(feature = "rbd")]
pub mod import;
pub mod pg;
#[cfg(test)]
pub(crate) mod testutil;

pub use error::{Error, Result};
