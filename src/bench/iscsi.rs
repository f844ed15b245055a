//! `iscsi://HOST[:PORT]/IQN/LUN`: a LUN through libiscsi, as a Cinder LVM (or any iSCSI)
//! volume is attached, with no kernel initiator. Each job logs in a session of its own and
//! keeps `iodepth` READ(16)/WRITE(16) commands in flight on it (see [`crate::iscsi`] for why).
//!
//! A LUN always exists and is never created or removed: it is someone's volume. It is written
//! only with `--allow-existing`, which then overwrites any of its blocks. `--phases` needs it
//! to read as holes first, so it is emptied with UNMAP (before the first run and between
//! repeats) when the LUN supports UNMAP, and refused when it does not.
use super::slots::{self, SlotQueue};
use super::{JobSpec, OpenPolicy, Recorder, Target, TargetMeta};
use crate::error::{Error, Result};
use crate::iscsi::{AioQueue, IscsiUrl, Lun, CONNECT_TIMEOUT};
use std::sync::Mutex;

/// An iSCSI LUN target.
pub struct IscsiTarget {
    meta: TargetMeta,
    url: IscsiUrl,
    /// The session that measured the LUN, kept for UNMAP and GET LBA STATUS.
    lun: Mutex<Lun>,
    unmap: bool,
    zeroes: bool,
    block_size: u32,
}

impl IscsiTarget {
    /// Logs in and reads the LUN's size; checks it against the policy (an existing target:
    /// writing needs `--allow-existing`, `--size` must match). `phases`: the run measures first
    /// writes into holes, which only a LUN with UNMAP can be emptied for.
    pub fn open(
        name: &str,
        url: IscsiUrl,
        policy: &OpenPolicy,
        phases: bool,
    ) -> Result<IscsiTarget> {
        let lun = Lun::connect(&url, CONNECT_TIMEOUT)?;
        let size = lun.size();
        if policy.writes && !policy.allow_existing {
            // check_existing's advice (name a new target) cannot apply: bench makes no LUNs.
            return Err(Error::Other(format!(
                "{name}: a LUN is someone's volume ({}) and the benchmark would write over its data: pass --allow-existing to let it overwrite the LUN{}, or benchmark reads only (--rw read|randread)",
                crate::units::format_size(size),
                if phases { " (--phases first UNMAPs all of it)" } else { "" }
            )));
        }
        let writable = policy.check_existing(name, size)?;
        let prov = lun.provisioning();
        if phases && !prov.unmap {
            return Err(Error::InvalidInput(format!(
                "{name}: --phases needs the LUN empty (all holes) before the first-write phase, and this LUN cannot be emptied: it does not support UNMAP (Logical Block Provisioning: {}); run without --phases, or enable thin provisioning on the target (tgt: --params thin_provisioning=1)",
                if prov.thin { "LBPU=0" } else { "not thin-provisioned" }
            )));
        }
        Ok(IscsiTarget {
            meta: TargetMeta {
                name: name.to_string(),
                size,
                created: false,
                writable,
            },
            url,
            block_size: lun.block_size(),
            unmap: prov.unmap,
            zeroes: prov.zeroes,
            lun: Mutex::new(lun),
        })
    }

    fn lun(&self) -> std::sync::MutexGuard<'_, Lun> {
        self.lun.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Target for IscsiTarget {
    fn meta(&self) -> &TargetMeta {
        &self.meta
    }

    fn run_job(&self, spec: &JobSpec) -> Result<Recorder> {
        if !spec.bs.is_multiple_of(u64::from(self.block_size)) {
            return Err(Error::InvalidInput(format!(
                "{}: --bs {} is not a multiple of the LUN's {}-byte blocks",
                self.meta.name, spec.bs, self.block_size
            )));
        }
        let mut lun = Lun::connect(&self.url, CONNECT_TIMEOUT)?;
        let mut q = AioQueue::new(&mut lun, spec.iodepth, spec.bs as usize);
        Ok(slots::run(
            spec,
            &mut q,
            &self.meta.name,
            self.meta.writable,
        ))
    }

    fn allocated_bytes(&self) -> Result<Option<u64>> {
        self.lun().mapped_bytes()
    }

    fn notes(&self) -> Vec<String> {
        let mut n = vec![
            "iSCSI through libiscsi: READ(16)/WRITE(16), one session per job, async commands driven by poll".into(),
        ];
        if self.unmap {
            n.push(format!(
                "thin-provisioned LUN with UNMAP (--phases empties it first){}",
                if self.zeroes {
                    ", unmapped blocks read as zeros"
                } else {
                    ""
                }
            ));
        }
        n
    }

    fn can_empty(&self) -> bool {
        self.unmap && self.meta.writable
    }

    fn make_holes(&self) -> Result<()> {
        let lun = self.lun();
        lun.unmap(0, lun.size() / u64::from(lun.block_size()))
    }

    fn finish(self: Box<Self>, _keep: bool) -> Result<()> {
        // Nothing was created: the LUN stays, the sessions end with their contexts.
        Ok(())
    }
}

impl SlotQueue for AioQueue<'_> {
    fn buf_mut(&mut self, slot: usize) -> Option<&mut [u8]> {
        AioQueue::buf_mut(self, slot)
    }

    fn submit(&mut self, slot: usize, offset: u64, len: usize, read: bool) -> Result<()> {
        AioQueue::submit(self, slot, offset, len, read)
    }

    fn next_done(&mut self) -> Result<Option<(usize, std::result::Result<(), String>)>> {
        // A short transfer is already an Err of the queue's.
        Ok(self
            .wait()?
            .map(|(slot, outcome)| (slot, outcome.map(|_| ()))))
    }
}
