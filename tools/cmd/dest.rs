//! The second identity of commands that read as one client and write as another, possibly on
//! another cluster (`backup`: the volume as `client.cinder`, the backups as
//! `client.cinder-backup`; `restore` the other way round). Same flags as `copy`.
use crate::global::Global;
use clap::Args;
use std::path::PathBuf;

/// Where and as whom the destination is written.
#[derive(Args, Clone, Debug)]
pub struct DestFlags {
    /// The destination cluster's ceph.conf (default: the source's).
    #[arg(long = "dest-conf", value_name = "PATH")]
    pub dest_conf: Option<PathBuf>,
    /// The client id on the destination, without `client.` (default: the source's).
    #[arg(long = "dest-id", value_name = "ID")]
    pub dest_id: Option<String>,
    /// The keyring for --dest-id (default: what the destination's conf names).
    #[arg(long = "dest-keyring", value_name = "PATH")]
    pub dest_keyring: Option<PathBuf>,
}

impl DestFlags {
    /// True when any destination flag is given: then the destination gets its own connection
    /// (each holds ~30 MiB of librados buffers and threads, so only then).
    pub fn given(&self) -> bool {
        self.dest_conf.is_some() || self.dest_id.is_some() || self.dest_keyring.is_some()
    }

    /// A connection for the destination, when it differs from the source's.
    pub fn connect(&self, g: &Global) -> rbdkit::Result<Option<rbdkit::ceph::Cluster>> {
        if !self.given() {
            return Ok(None);
        }
        self.global(g).connect_for_bulk_io().map(Some)
    }

    /// The global settings with the destination's identity in place of the source's.
    pub fn global(&self, g: &Global) -> Global {
        let mut dg = g.clone();
        if let Some(c) = &self.dest_conf {
            dg.conf = Some(c.clone());
        }
        if let Some(id) = &self.dest_id {
            dg.id = Some(id.clone());
            dg.name = None;
        }
        if let Some(k) = &self.dest_keyring {
            dg.keyring = Some(k.clone());
        }
        dg
    }
}
