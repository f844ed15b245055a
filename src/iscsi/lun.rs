//! A logged-in iSCSI session to one LUN (`iscsi_context`), driven by `poll` on libiscsi's
//! socket: connect and login within a timeout, the LUN checked against REPORT LUNS and
//! INQUIRY, READ CAPACITY(16), the Logical Block Provisioning and Block Limits VPD pages,
//! UNMAP and GET LBA STATUS. Every call into libiscsi outside [`super::aio`] is here.
use super::{iscsi_text, sense_text, IscsiUrl};
use crate::error::{Error, Result};
use libiscsi_sys as sys;
use std::cell::Cell;
use std::ffi::{c_int, c_void, CStr, CString};
use std::time::{Duration, Instant};

/// How long connecting and logging in may take before the portal counts as unreachable.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long one SCSI command may take before libiscsi fails it (it runs the timer itself, in
/// `iscsi_service`); a target that stopped answering then fails the run instead of hanging it.
pub const OP_TIMEOUT: Duration = Duration::from_secs(60);

/// The initiator's name, as tgt's ACLs and logs see it.
const INITIATOR: &CStr = c"iqn.2026-12.org.rbdkit:initiator";

/// GOOD, as the callbacks receive it.
pub(super) const GOOD: c_int = sys::scsi_status_SCSI_STATUS_GOOD as c_int;

/// What the LUN says about thin provisioning.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Provisioning {
    /// READ CAPACITY(16)'s LBPME: the LUN is thin-provisioned (blocks can be unmapped).
    pub thin: bool,
    /// The Logical Block Provisioning VPD page's LBPU: UNMAP is supported.
    pub unmap: bool,
    /// LBPRZ: unmapped blocks read as zeros.
    pub zeroes: bool,
    /// Block Limits: most blocks one UNMAP may free (0: not reported).
    pub max_unmap_blocks: u32,
    /// Block Limits: most block descriptors in one UNMAP (0: not reported).
    pub max_unmap_descriptors: u32,
}

/// A session to one LUN. A context serves one thread at a time (libiscsi takes no locks), so
/// `Lun` is `Send` and not `Sync`: parallel jobs each open their own session.
pub struct Lun {
    pub(super) ctx: *mut sys::iscsi_context,
    url: IscsiUrl,
    name: String,
    block_size: u32,
    blocks: u64,
    prov: Provisioning,
    /// The socket's pending error (SO_ERROR) when poll last reported one: libiscsi's own
    /// message for a refused connection does not say why.
    sock_err: Cell<i32>,
}

// SAFETY: an iscsi_context has no thread affinity (no thread-local state, its socket is a
// plain fd); Lun is not Sync and every method takes &self or &mut self, so one thread at a
// time uses it.
unsafe impl Send for Lun {}

/// Where a callback reports: set once, read after `iscsi_service` returns.
#[derive(Default)]
struct Wait {
    done: Cell<bool>,
    status: Cell<c_int>,
    data: Cell<*mut c_void>,
}

/// Runs inside `iscsi_service` on the thread that drives the context.
unsafe extern "C" fn on_wait(
    _ctx: *mut sys::iscsi_context,
    status: c_int,
    data: *mut c_void,
    private: *mut c_void,
) {
    // SAFETY: private is the &Wait the caller passed, alive until it has seen `done`.
    let w = unsafe { &*private.cast::<Wait>() };
    w.status.set(status);
    w.data.set(data);
    w.done.set(true);
}

/// A SCSI task libiscsi handed us; freed on drop.
struct Task(*mut sys::scsi_task);

impl Drop for Task {
    fn drop(&mut self) {
        // SAFETY: the task came from a *_task call, its callback has run (or it was never
        // queued), and nothing refers to it after this.
        unsafe { sys::scsi_free_scsi_task(self.0) };
    }
}

impl Task {
    /// The unmarshalled DATA-IN (a struct of libiscsi's for the command), owned by the task.
    fn datain<T>(&self) -> Option<&T> {
        // SAFETY: the task completed GOOD; unmarshall allocates the struct inside the task's
        // own memory, valid as long as the task (so as long as the returned borrow).
        let p = unsafe { sys::scsi_datain_unmarshall(self.0) };
        // SAFETY: non-null means a valid T for the command this task ran.
        (!p.is_null()).then(|| unsafe { &*p.cast::<T>() })
    }

    fn sense(&self) -> String {
        sense_text(self.0)
    }

    fn unit_attention(&self) -> bool {
        // SAFETY: the task is live; the key is read as the integer it is in C (a value outside
        // the Rust enum would be undefined behaviour if read as the enum).
        let key = unsafe { std::ptr::addr_of!((*self.0).sense.key).cast::<u32>().read() };
        key == sys::scsi_sense_key::SCSI_SENSE_UNIT_ATTENTION as u32
    }
}

fn cstr(what: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| Error::InvalidInput(format!("{what} '{s}' contains a NUL byte")))
}

impl Lun {
    /// Connects to the portal, logs in to the target and opens the LUN, all within `timeout`:
    /// an unreachable portal, an unknown IQN, a missing LUN or one that is not a disk is one
    /// error naming the URL and what to do.
    pub fn connect(url: &IscsiUrl, timeout: Duration) -> Result<Lun> {
        let deadline = Instant::now() + timeout;
        let name = url.to_string();
        let iqn = cstr("IQN", &url.iqn)?;
        let portal = cstr("portal", &url.portal())?;
        // SAFETY: the initiator name is NUL-terminated and copied; NULL means it failed.
        let ctx = unsafe { sys::iscsi_create_context(INITIATOR.as_ptr()) };
        if ctx.is_null() {
            return Err(Error::Other(format!(
                "{name}: libiscsi could not make a context (out of memory?)"
            )));
        }
        let mut lun = Lun {
            ctx,
            url: url.clone(),
            name,
            block_size: 0,
            blocks: 0,
            prov: Provisioning::default(),
            sock_err: Cell::new(0),
        };
        // SAFETY: ctx is live and not connected; the strings are NUL-terminated and copied.
        unsafe {
            sys::iscsi_set_targetname(ctx, iqn.as_ptr());
            sys::iscsi_set_session_type(ctx, sys::iscsi_session_type_ISCSI_SESSION_NORMAL);
            // No digests: the data never leaves the host here, and CRC32C costs CPU per byte.
            sys::iscsi_set_header_digest(ctx, sys::iscsi_header_digest_ISCSI_HEADER_DIGEST_NONE);
            // A lost session fails the run instead of being silently re-established.
            sys::iscsi_set_noautoreconnect(ctx, 1);
            sys::iscsi_set_timeout(ctx, OP_TIMEOUT.as_secs() as c_int);
        }
        let w = Wait::default();
        // SAFETY: ctx is live; w outlives the wait below (the callback is not run after
        // the context is destroyed, which happens before w goes away on every path).
        let r = unsafe { sys::iscsi_connect_async(ctx, portal.as_ptr(), Some(on_wait), wptr(&w)) };
        lun.settle(r, &w, deadline);
        if !w.done.get() || w.status.get() != GOOD {
            return Err(lun.connect_failed(&w, timeout));
        }
        let w = Wait::default();
        // SAFETY: as above, on the connected context.
        let r = unsafe { sys::iscsi_login_async(ctx, Some(on_wait), wptr(&w)) };
        lun.settle(r, &w, deadline);
        if !w.done.get() || w.status.get() != GOOD {
            return Err(lun.login_failed(&w, timeout));
        }
        lun.check_lun(deadline)?;
        lun.read_capacity(deadline)?;
        if lun.prov.thin {
            lun.read_provisioning(deadline)?;
        }
        Ok(lun)
    }

    /// The LUN's URL.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The URL it was opened from.
    pub fn url(&self) -> &IscsiUrl {
        &self.url
    }

    /// Bytes per logical block.
    pub fn block_size(&self) -> u32 {
        self.block_size
    }

    /// The LUN's size in bytes.
    pub fn size(&self) -> u64 {
        self.blocks * u64::from(self.block_size)
    }

    /// Its thin-provisioning facts.
    pub fn provisioning(&self) -> Provisioning {
        self.prov
    }

    /// libiscsi's last error on this context, one line.
    pub(super) fn last_error(&self) -> String {
        // SAFETY: ctx is live; the returned string is NUL-terminated and owned by the context.
        iscsi_text(unsafe { sys::iscsi_get_error(self.ctx) })
    }

    /// Waits for `w` to be set, servicing the socket, until `deadline`.
    fn wait(&self, w: &Wait, deadline: Instant) -> Result<()> {
        while !w.done.get() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::WithErrno {
                    message: format!("{}: no answer", self.name),
                    errno: libc::ETIMEDOUT,
                });
            }
            self.service(left.min(Duration::from_secs(1)))?;
        }
        Ok(())
    }

    /// One round of the event loop: poll the socket for what libiscsi wants, at most `max`,
    /// then let it run (a poll that timed out still lets it scan for timed-out commands).
    pub(super) fn service(&self, max: Duration) -> Result<()> {
        // SAFETY: ctx is live.
        let (fd, events) = unsafe {
            (
                sys::iscsi_get_fd(self.ctx),
                sys::iscsi_which_events(self.ctx),
            )
        };
        let mut revents = 0;
        if events == 0 || fd < 0 {
            // libiscsi waits for something (a reconnect back-off): it asks for >= 100 ms.
            std::thread::sleep(max.min(Duration::from_millis(100)));
        } else {
            let mut p = libc::pollfd {
                fd,
                events: events as i16,
                revents: 0,
            };
            // SAFETY: p is one valid pollfd.
            let r = unsafe { libc::poll(&mut p, 1, max.as_millis().min(60_000) as c_int) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.raw_os_error() == Some(libc::EINTR) {
                    return Ok(());
                }
                return Err(Error::io(format!("poll the session of {}", self.name), e));
            }
            revents = c_int::from(p.revents);
            if p.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
                self.note_socket_error(fd);
            }
        }
        // SAFETY: ctx is live; callbacks it runs only touch what their private data names.
        if unsafe { sys::iscsi_service(self.ctx, revents) } < 0 {
            return Err(Error::WithErrno {
                message: format!(
                    "{}: the iSCSI session failed: {}; check that the target still runs",
                    self.name,
                    self.last_error()
                ),
                errno: libc::EIO,
            });
        }
        Ok(())
    }

    fn note_socket_error(&self, fd: c_int) {
        let mut err: c_int = 0;
        let mut len = std::mem::size_of::<c_int>() as libc::socklen_t;
        // SAFETY: fd is libiscsi's open socket; err and len are valid out pointers.
        let r = unsafe {
            libc::getsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_ERROR,
                std::ptr::from_mut(&mut err).cast(),
                &mut len,
            )
        };
        if r == 0 && err != 0 {
            self.sock_err.set(err);
        }
    }

    /// Waits for the connect or login queued with result `r`; afterwards `w` is done unless the
    /// deadline passed (a refusal at once, or a failed session, count as done with an error).
    fn settle(&self, r: c_int, w: &Wait, deadline: Instant) {
        let failed = r != 0
            || self
                .wait(w, deadline)
                .is_err_and(|e| e.errno() != Some(libc::ETIMEDOUT));
        if failed {
            w.status.set(sys::scsi_status_SCSI_STATUS_ERROR as c_int);
            w.done.set(true);
        }
    }

    fn connect_failed(&self, w: &Wait, timeout: Duration) -> Error {
        let portal = self.url.portal();
        if !w.done.get() {
            return Error::WithErrno {
                message: format!(
                    "{}: no answer from the portal {portal} within {} s; check the address and that a target (tgtd) listens there",
                    self.name,
                    timeout.as_secs()
                ),
                errno: libc::ETIMEDOUT,
            };
        }
        let (why, errno) = match self.sock_err.get() {
            0 => (self.last_error(), libc::ECONNREFUSED),
            e => (
                std::io::Error::from_raw_os_error(e)
                    .to_string()
                    .replace(&format!(" (os error {e})"), ""),
                e,
            ),
        };
        Error::WithErrno {
            message: format!(
                "{}: cannot connect to the portal {portal} ({why}); check the address and port, and that the target (tgtd) runs there",
                self.name
            ),
            errno,
        }
    }

    fn login_failed(&self, w: &Wait, timeout: Duration) -> Error {
        let why = self.last_error();
        if !w.done.get() {
            return Error::WithErrno {
                message: format!(
                    "{}: the portal accepted the connection but the login got no answer within {} s; check the target",
                    self.name,
                    timeout.as_secs()
                ),
                errno: libc::ETIMEDOUT,
            };
        }
        if why.contains("not found") {
            return Error::WithErrno {
                message: format!(
                    "{}: no target named {} on the portal {}; `iscsi-ls {}/` lists its targets",
                    self.name,
                    self.url.iqn,
                    self.url.portal(),
                    self.url.portal_url()
                ),
                errno: libc::ENOENT,
            };
        }
        Error::WithErrno {
            message: format!(
                "{}: login refused ({why}); check the target's ACL (tgtadm ... --op bind --initiator-address) and CHAP settings",
                self.name
            ),
            errno: libc::EACCES,
        }
    }

    /// Runs one SCSI command to completion: `submit` queues it with the callback and private
    /// data it is given. A UNIT ATTENTION (the first command after a login often gets one) is
    /// retried; any other failure is an error naming `what`.
    fn command(
        &self,
        what: &str,
        deadline: Instant,
        submit: impl Fn(sys::iscsi_command_cb, *mut c_void) -> *mut sys::scsi_task,
    ) -> Result<Task> {
        for _ in 0..4 {
            let w = Wait::default();
            let task = submit(Some(on_wait), wptr(&w));
            if task.is_null() {
                return Err(Error::Other(format!(
                    "{}: {what}: {}",
                    self.name,
                    self.last_error()
                )));
            }
            let task = Task(task);
            if let Err(e) = self.wait(&w, deadline) {
                // Cancelled here, while w is alive: libiscsi runs the callback at once and
                // forgets the command (destroying the context later would run it too).
                // SAFETY: ctx is live and the task is queued in it.
                unsafe { sys::iscsi_scsi_cancel_task(self.ctx, task.0) };
                return Err(match e.errno() {
                    Some(libc::ETIMEDOUT) => e.context(format!(
                        "{}: {what}: no answer from the target in time; check that it still runs",
                        self.name
                    )),
                    _ => e,
                });
            }
            match w.status.get() {
                GOOD => return Ok(task),
                s if s == sys::scsi_status_SCSI_STATUS_CHECK_CONDITION as c_int
                    && task.unit_attention() => {}
                s if s == sys::scsi_status_SCSI_STATUS_CHECK_CONDITION as c_int => {
                    return Err(Error::WithErrno {
                        message: format!("{}: {what}: {}", self.name, task.sense()),
                        errno: libc::EIO,
                    });
                }
                _ => {
                    return Err(Error::WithErrno {
                        message: format!("{}: {what}: {}", self.name, self.last_error()),
                        errno: libc::EIO,
                    })
                }
            }
        }
        Err(Error::Other(format!(
            "{}: {what}: the target keeps answering UNIT ATTENTION; try again",
            self.name
        )))
    }

    /// REPORT LUNS, then a standard INQUIRY: the LUN exists and is a disk.
    fn check_lun(&self, deadline: Instant) -> Result<()> {
        let t = self.command("REPORT LUNS", deadline, |cb, p| {
            // SAFETY: ctx is live and logged in; p stays valid until the command completes.
            unsafe { sys::iscsi_reportluns_task(self.ctx, 0, 16384, cb, p) }
        })?;
        let list: &sys::scsi_reportluns_list = t.datain().ok_or_else(|| {
            Error::Other(format!(
                "{}: REPORT LUNS: an answer libiscsi cannot read",
                self.name
            ))
        })?;
        // SAFETY: libiscsi allocated `num` entries after the header.
        let luns = unsafe { list.luns.as_slice(list.num as usize) }.to_vec();
        // Only on the error paths: which LUNs are disks (tgt's LUN 0 is its controller).
        let disks = || -> String {
            let d: Vec<u16> = luns
                .iter()
                .copied()
                .filter(|&l| self.device_type(l, deadline).ok() == Some(0))
                .collect();
            format!("disk {}", lun_ranges(&d))
        };
        if !luns.contains(&self.url.lun) {
            return Err(Error::WithErrno {
                message: format!(
                    "{}: no such LUN (the target has {}); name one of those",
                    self.name,
                    disks()
                ),
                errno: libc::ENOENT,
            });
        }
        let kind = self.device_type(self.url.lun, deadline)?;
        if kind != 0 {
            return Err(Error::InvalidInput(format!(
                "{}: LUN {} is not a disk (SCSI device type {kind}; tgt's LUN 0 is the target's controller); the target has {}",
                self.name,
                self.url.lun,
                disks()
            )));
        }
        Ok(())
    }

    /// The SCSI peripheral device type of `lun` (0: a disk), from a standard INQUIRY.
    fn device_type(&self, lun: u16, deadline: Instant) -> Result<u32> {
        let t = self.command("INQUIRY", deadline, |cb, p| {
            // SAFETY: ctx is live and logged in; p stays valid until the command completes.
            unsafe { sys::iscsi_inquiry_task(self.ctx, c_int::from(lun), 0, 0, 255, cb, p) }
        })?;
        let inq: &sys::scsi_inquiry_standard = t.datain().ok_or_else(|| {
            Error::Other(format!(
                "{}: INQUIRY: an answer libiscsi cannot read",
                self.name
            ))
        })?;
        // SAFETY: read as the integer it is in C, not as a Rust enum.
        Ok(unsafe { std::ptr::addr_of!(inq.device_type).cast::<u32>().read() })
    }

    fn read_capacity(&mut self, deadline: Instant) -> Result<()> {
        let lun = c_int::from(self.url.lun);
        let t = self.command("READ CAPACITY(16)", deadline, |cb, p| {
            // SAFETY: as in check_lun.
            unsafe { sys::iscsi_readcapacity16_task(self.ctx, lun, cb, p) }
        })?;
        let rc: &sys::scsi_readcapacity16 = t.datain().ok_or_else(|| {
            Error::Other(format!(
                "{}: READ CAPACITY(16): an answer libiscsi cannot read",
                self.name
            ))
        })?;
        if rc.block_length == 0 || !rc.block_length.is_power_of_two() || rc.returned_lba == u64::MAX
        {
            return Err(Error::Other(format!(
                "{}: READ CAPACITY(16) says {} blocks of {} bytes: not a usable disk",
                self.name,
                rc.returned_lba.wrapping_add(1),
                rc.block_length
            )));
        }
        self.block_size = rc.block_length;
        self.blocks = rc.returned_lba + 1;
        self.prov.thin = rc.lbpme != 0;
        self.prov.zeroes = rc.lbprz != 0;
        Ok(())
    }

    fn read_provisioning(&mut self, deadline: Instant) -> Result<()> {
        let lun = c_int::from(self.url.lun);
        let lbp = sys::scsi_inquiry_pagecode_SCSI_INQUIRY_PAGECODE_LOGICAL_BLOCK_PROVISIONING;
        let t = self.command("INQUIRY (Logical Block Provisioning)", deadline, |cb, p| {
            // SAFETY: as in check_lun.
            unsafe { sys::iscsi_inquiry_task(self.ctx, lun, 1, lbp as c_int, 255, cb, p) }
        })?;
        let Some(page) = t.datain::<sys::scsi_inquiry_logical_block_provisioning>() else {
            return Ok(());
        };
        self.prov.unmap = page.lbpu != 0;
        let limits = sys::scsi_inquiry_pagecode_SCSI_INQUIRY_PAGECODE_BLOCK_LIMITS;
        // A target without the Block Limits page still takes one descriptor per UNMAP.
        if let Ok(t) = self.command("INQUIRY (Block Limits)", deadline, |cb, p| {
            // SAFETY: as in check_lun.
            unsafe { sys::iscsi_inquiry_task(self.ctx, lun, 1, limits as c_int, 255, cb, p) }
        }) {
            if let Some(bl) = t.datain::<sys::scsi_inquiry_block_limits>() {
                self.prov.max_unmap_blocks = bl.max_unmap;
                self.prov.max_unmap_descriptors = bl.max_unmap_bdc;
            }
        }
        Ok(())
    }

    /// Frees (UNMAPs) `blocks` blocks from `lba`, in as few commands as the LUN's Block Limits
    /// allow. Refused when the LUN does not support UNMAP.
    pub fn unmap(&self, lba: u64, blocks: u64) -> Result<()> {
        if !self.prov.unmap {
            return Err(Error::Other(format!(
                "{}: the LUN does not support UNMAP (its Logical Block Provisioning page says so)",
                self.name
            )));
        }
        let per_desc = match self.prov.max_unmap_blocks {
            0 | u32::MAX => u64::from(u32::MAX),
            n => u64::from(n),
        };
        let per_cmd = match self.prov.max_unmap_descriptors {
            0 => 1,
            n => n.min(128) as usize,
        };
        let end = lba + blocks;
        let mut at = lba;
        while at < end {
            let mut list = Vec::with_capacity(per_cmd);
            while at < end && list.len() < per_cmd {
                let n = (end - at).min(per_desc);
                list.push(sys::unmap_list {
                    lba: at,
                    num: n as u32,
                });
                at += n;
            }
            let lun = c_int::from(self.url.lun);
            let deadline = Instant::now() + OP_TIMEOUT;
            self.command("UNMAP", deadline, |cb, p| {
                // SAFETY: libiscsi copies the descriptors into the command's data at once.
                unsafe {
                    sys::iscsi_unmap_task(
                        self.ctx,
                        lun,
                        0,
                        0,
                        list.as_ptr().cast_mut(),
                        list.len() as c_int,
                        cb,
                        p,
                    )
                }
            })?;
        }
        Ok(())
    }

    /// Bytes the LUN has mapped (allocated), from GET LBA STATUS over the whole LUN; `None`
    /// when it is not thin-provisioned (every block is mapped) or does not answer the command.
    pub fn mapped_bytes(&self) -> Result<Option<u64>> {
        if !self.prov.thin {
            return Ok(None);
        }
        let lun = c_int::from(self.url.lun);
        let mut lba = 0u64;
        let mut mapped = 0u64;
        while lba < self.blocks {
            let deadline = Instant::now() + OP_TIMEOUT;
            let start = lba;
            let t = match self.command("GET LBA STATUS", deadline, |cb, p| {
                // SAFETY: as in check_lun.
                unsafe { sys::iscsi_get_lba_status_task(self.ctx, lun, start, 1 << 20, cb, p) }
            }) {
                Ok(t) => t,
                Err(_) if lba == 0 => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some(st) = t.datain::<sys::scsi_get_lba_status>() else {
                return Ok(None);
            };
            if st.num_descriptors == 0 || st.descriptors.is_null() {
                break;
            }
            // SAFETY: libiscsi allocated num_descriptors entries, owned by the task.
            let ds =
                unsafe { std::slice::from_raw_parts(st.descriptors, st.num_descriptors as usize) };
            let before = lba;
            for d in ds {
                let n = u64::from(d.num_blocks);
                if d.provisioning == sys::scsi_provisioning_type_SCSI_PROVISIONING_TYPE_MAPPED {
                    mapped += n;
                }
                lba = lba.max(d.lba.saturating_add(n));
            }
            if lba <= before {
                break; // a target that does not advance would loop forever
            }
        }
        Ok(Some(mapped * u64::from(self.block_size)))
    }
}

impl Drop for Lun {
    fn drop(&mut self) {
        // A polite logout is not waited for: destroying the context closes the socket, and
        // tgt ends the session on its own.
        // SAFETY: ctx is live and no queue borrows the Lun (an AioQueue holds &mut Lun and
        // has drained its tasks); this is its last use.
        unsafe { sys::iscsi_destroy_context(self.ctx) };
    }
}

fn wptr(w: &Wait) -> *mut c_void {
    (w as *const Wait).cast_mut().cast()
}

/// "LUN 1", "LUNs 0..3", "LUNs 0, 2..4", "no LUNs".
pub fn lun_ranges(luns: &[u16]) -> String {
    let mut v = luns.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}..{}", v[i], v[j])
        });
        i = j + 1;
    }
    match (v.len(), parts.is_empty()) {
        (_, true) => "no LUNs".into(),
        (1, _) => format!("LUN {}", parts[0]),
        _ => format!("LUNs {}", parts.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::lun_ranges;

    #[test]
    fn lun_lists() {
        assert_eq!(lun_ranges(&[1]), "LUN 1");
        assert_eq!(lun_ranges(&[0, 1]), "LUNs 0..1");
        assert_eq!(lun_ranges(&[4, 0, 2, 3]), "LUNs 0, 2..4");
        assert_eq!(lun_ranges(&[]), "no LUNs");
    }
}
