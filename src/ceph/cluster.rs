//! A connection to a Ceph cluster: conf, client id, keyring, a connect timeout that turns an
//! unreachable monitor into a clear error, and monitor commands (no mgr needed).
use super::{check, cstr, IoCtx};
use crate::error::{Error, Result};
use librados_sys as sys;
use std::ffi::CStr;
use std::os::raw::c_char;
use std::path::PathBuf;
use std::ptr;
use std::sync::Arc;
use std::time::Duration;

/// How to reach the cluster, as the `rbd` CLI takes it.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Conf file; `None` uses `CEPH_CONF` and the standard search path.
    pub conf: Option<PathBuf>,
    /// Client id without `client.` (default `admin`).
    pub id: Option<String>,
    /// Keyring file (the key is only ever read from a file).
    pub keyring: Option<PathBuf>,
    /// Cluster name (default `ceph`).
    pub cluster: Option<String>,
    /// How long to wait for the monitors (librados alone waits 300 s).
    pub timeout: Duration,
    /// Fail OSD operations that get no answer for this long (`rados_osd_op_timeout`), so a
    /// full or unreachable cluster turns into errors instead of writes blocked forever.
    /// `None` waits as long as librados does (forever).
    pub op_timeout: Option<Duration>,
    /// Let librados log to stderr (otherwise its multi-line noise is silenced; errors come back
    /// as values).
    pub librados_log: bool,
    /// Config options set last, over the conf file and `CEPH_ARGS` (`debug_rbd` = `20`, ...);
    /// any of them turns on [`ConnectOptions::librados_log`], since a debug level nobody can
    /// read is no use.
    pub debug: Vec<(String, String)>,
    /// Tune librbd for one pass of bulk reads and writes whose buffers stay untouched until
    /// their completion (an import, export, copy, checksum): no librbd cache (each byte is
    /// read or written once; a flush ends the copy anyway) and zero-copy writes, which librbd
    /// only honours with the cache off. Measured on a dense 1 GiB import: a third less CPU (no
    /// copy of every byte into librbd's buffers) and 140 MB less RSS.
    pub bulk_io: bool,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            conf: None,
            id: None,
            keyring: None,
            cluster: None,
            timeout: Duration::from_secs(30),
            op_timeout: None,
            librados_log: false,
            debug: Vec::new(),
            bulk_io: false,
        }
    }
}

impl ConnectOptions {
    /// `client.<id>`.
    pub fn client_name(&self) -> String {
        format!("client.{}", self.id.as_deref().unwrap_or("admin"))
    }
}

/// Owns the `rados_t`; shut down when the last user (cluster, ioctx or image) is gone.
pub(crate) struct Handle {
    pub(crate) raw: sys::rados_t,
    pub(crate) client: String,
}

// SAFETY: a connected rados_t is documented thread-safe by librados; we never hand out the raw
// pointer beyond this module tree and only shut it down in Drop, when no other owner remains.
unsafe impl Send for Handle {}
// SAFETY: as above; all calls made through &Handle are thread-safe librados calls.
unsafe impl Sync for Handle {}

impl Drop for Handle {
    fn drop(&mut self) {
        // SAFETY: raw came from rados_create2 and every IoCtx/Image holding an Arc to us is gone.
        unsafe { sys::rados_shutdown(self.raw) };
    }
}

/// A connected cluster. Cheap to clone; the connection closes when the last clone, ioctx and
/// image are dropped.
#[derive(Clone)]
pub struct Cluster {
    pub(crate) handle: Arc<Handle>,
}

impl Cluster {
    /// Connects, failing within `opts.timeout` when no monitor answers.
    pub fn connect(opts: &ConnectOptions) -> Result<Cluster> {
        let client = opts.client_name();
        let c_client = cstr("client name", &client)?;
        let c_cluster = cstr("cluster name", opts.cluster.as_deref().unwrap_or("ceph"))?;
        let mut raw: sys::rados_t = ptr::null_mut();
        // SAFETY: raw is a valid out-pointer; the strings outlive the call.
        let ret = unsafe { sys::rados_create2(&mut raw, c_cluster.as_ptr(), c_client.as_ptr(), 0) };
        check(ret, "connect to cluster: create handle for", &client)?;
        // From here the handle is owned and shut down on every error path.
        let handle = Handle {
            raw,
            client: client.clone(),
        };
        let what = match &opts.conf {
            Some(p) => format!("{client} (conf {})", p.display()),
            None => format!("{client} (conf from CEPH_CONF or the default search path)"),
        };

        let conf = match &opts.conf {
            Some(p) => {
                if !p.exists() {
                    return Err(Error::InvalidInput(format!(
                        "conf file {} does not exist: pass -c/--conf or set CEPH_CONF",
                        p.display()
                    )));
                }
                Some(cstr("conf path", &p.to_string_lossy())?)
            }
            None => None,
        };
        // SAFETY: handle.raw is a created, unconnected handle; conf is NULL or a valid C string.
        let ret = unsafe {
            sys::rados_conf_read_file(
                handle.raw,
                conf.as_ref().map_or(ptr::null(), |c| c.as_ptr()),
            )
        };
        check(ret, "connect to cluster: read conf for", &what)?;
        // SAFETY: NULL means "read CEPH_ARGS"; the handle is valid.
        unsafe { sys::rados_conf_parse_env(handle.raw, ptr::null()) };

        if let Some(k) = &opts.keyring {
            if !k.exists() {
                return Err(Error::InvalidInput(format!(
                    "keyring {} does not exist: pass --keyring with the path of {client}'s keyring",
                    k.display()
                )));
            }
            set_conf(&handle, "keyring", &k.to_string_lossy())?;
        }
        let secs = opts.timeout.as_secs_f64().max(1.0).ceil().to_string();
        set_conf(&handle, "client_mount_timeout", &secs)?;
        set_conf(&handle, "rados_mon_op_timeout", &secs)?;
        if let Some(t) = opts.op_timeout {
            set_conf(
                &handle,
                "rados_osd_op_timeout",
                &t.as_secs_f64().max(1.0).ceil().to_string(),
            )?;
        }
        if opts.bulk_io {
            set_conf(&handle, "rbd_cache", "false")?;
            set_conf(&handle, "rbd_disable_zero_copy_writes", "false")?;
        }
        for (key, level) in &opts.debug {
            set_conf(&handle, key, level)?;
        }
        // A client logs to stderr by default; the conf may send it to a file instead. Asked
        // for, the log comes to stderr whatever the conf says; not asked for, librados'
        // multi-line noise is silenced (errors come back as values).
        let log = if opts.librados_log || !opts.debug.is_empty() {
            "true"
        } else {
            "false"
        };
        for key in ["log_to_stderr", "err_to_stderr"] {
            set_conf(&handle, key, log)?;
        }
        // SAFETY: the handle is configured and not yet connected.
        let ret = unsafe { sys::rados_connect(handle.raw) };
        if ret < 0 {
            return Err(connect_error(ret, &what, opts));
        }
        Ok(Cluster {
            handle: Arc::new(handle),
        })
    }

    /// The client name this connection authenticated as.
    pub fn client(&self) -> &str {
        &self.handle.client
    }

    /// Opens a pool (and namespace).
    pub fn ioctx(&self, pool: &str, namespace: Option<&str>) -> Result<IoCtx> {
        IoCtx::open(self, pool, namespace)
    }

    /// Sends one monitor command (JSON) and returns its output buffer and status string.
    pub fn mon_command(&self, cmd_json: &str) -> Result<(Vec<u8>, String)> {
        self.mon_command_to(None, cmd_json)
    }

    /// Sends a command to one named monitor (like `ceph tell mon.NAME`), which answers from its
    /// own running state — e.g. `config get` returns the value in effect, injectargs included.
    pub fn mon_command_target(&self, mon: &str, cmd_json: &str) -> Result<(Vec<u8>, String)> {
        self.mon_command_to(Some(mon), cmd_json)
    }

    fn mon_command_to(&self, mon: Option<&str>, cmd_json: &str) -> Result<(Vec<u8>, String)> {
        let cmd = cstr("monitor command", cmd_json)?;
        let target = mon.map(|m| cstr("monitor name", m)).transpose()?;
        let cmds = [cmd.as_ptr()];
        let mut outbuf: *mut c_char = ptr::null_mut();
        let mut outbuf_len = 0usize;
        let mut outs: *mut c_char = ptr::null_mut();
        let mut outs_len = 0usize;
        // SAFETY: cmds holds one valid C string; all out-pointers are valid; librados allocates
        // the outputs, which we copy and free with rados_buffer_free below.
        let ret = unsafe {
            match &target {
                None => sys::rados_mon_command(
                    self.handle.raw,
                    cmds.as_ptr() as *mut *const c_char,
                    1,
                    ptr::null(),
                    0,
                    &mut outbuf,
                    &mut outbuf_len,
                    &mut outs,
                    &mut outs_len,
                ),
                Some(t) => sys::rados_mon_command_target(
                    self.handle.raw,
                    t.as_ptr(),
                    cmds.as_ptr() as *mut *const c_char,
                    1,
                    ptr::null(),
                    0,
                    &mut outbuf,
                    &mut outbuf_len,
                    &mut outs,
                    &mut outs_len,
                ),
            }
        };
        // SAFETY: librados set these to buffers of the given lengths (or NULL); copied before free.
        let (out, status) = unsafe {
            let out = copy_buf(outbuf, outbuf_len);
            let status = String::from_utf8_lossy(&copy_buf(outs, outs_len)).into_owned();
            if !outbuf.is_null() {
                sys::rados_buffer_free(outbuf);
            }
            if !outs.is_null() {
                sys::rados_buffer_free(outs);
            }
            (out, status)
        };
        if ret < 0 {
            let prefix = serde_json::from_str::<serde_json::Value>(cmd_json)
                .ok()
                .and_then(|v| v.get("prefix").and_then(|p| p.as_str()).map(str::to_string))
                .unwrap_or_else(|| "command".into());
            let detail = if status.is_empty() {
                String::new()
            } else {
                format!(" ({})", status.trim())
            };
            return Err(Error::ceph(
                format!("monitor command '{prefix}'{detail}"),
                "on the monitor",
                ret,
            ));
        }
        Ok((out, status))
    }

    /// Reads a config option as this client sees it (e.g. `rbd_cache`).
    pub fn conf_get(&self, option: &str) -> Result<String> {
        conf_get(&self.handle, option)
    }

    /// The name of the pool with this id (`rados_pool_reverse_lookup`).
    pub fn pool_name(&self, id: i64) -> Result<String> {
        let mut buf = vec![0 as c_char; 512];
        // SAFETY: buf is writable for its length; librados NUL-terminates within it on success.
        let ret = unsafe {
            sys::rados_pool_reverse_lookup(self.handle.raw, id, buf.as_mut_ptr(), buf.len())
        };
        check(ret, "find the name of pool id", &id)?;
        // SAFETY: NUL-terminated by librados on success.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }

    /// The cluster fsid.
    pub fn fsid(&self) -> Result<String> {
        let mut buf = [0 as c_char; 64];
        // SAFETY: buf is writable for its length; librados NUL-terminates within it.
        let ret = unsafe { sys::rados_cluster_fsid(self.handle.raw, buf.as_mut_ptr(), buf.len()) };
        check(ret, "read fsid of", &"the cluster")?;
        // SAFETY: NUL-terminated by librados on success.
        Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
            .to_string_lossy()
            .into_owned())
    }
}

fn set_conf(handle: &Handle, key: &str, value: &str) -> Result<()> {
    let k = cstr("conf option", key)?;
    let v = cstr("conf value", value)?;
    // SAFETY: valid handle and C strings for the duration of the call.
    let ret = unsafe { sys::rados_conf_set(handle.raw, k.as_ptr(), v.as_ptr()) };
    check(ret, &format!("set conf option {key} for"), &handle.client).map(|_| ())
}

fn conf_get(handle: &Handle, option: &str) -> Result<String> {
    let k = cstr("conf option", option)?;
    let mut buf = vec![0 as c_char; 4096];
    // SAFETY: buf is writable for its length; librados NUL-terminates within it.
    let ret = unsafe { sys::rados_conf_get(handle.raw, k.as_ptr(), buf.as_mut_ptr(), buf.len()) };
    check(ret, "read conf option", &option)?;
    // SAFETY: NUL-terminated by librados on success.
    Ok(unsafe { CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned())
}

/// # Safety
/// `p` must be NULL or point to `len` readable bytes.
unsafe fn copy_buf(p: *const c_char, len: usize) -> Vec<u8> {
    if p.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: guaranteed by the caller.
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec()
}

/// Connect failures are the ones operators hit most; say which knob to turn.
fn connect_error(ret: i32, what: &str, opts: &ConnectOptions) -> Error {
    let errno = -ret;
    let t = opts.timeout.as_secs();
    let hint = match errno {
        libc::ETIMEDOUT | libc::EINTR => format!(
            "no monitor answered within {t} s; check mon_host in the conf and that the cluster is up, or raise --connect-timeout"
        ),
        libc::ENOENT => "no keyring found for the client; pass --keyring PATH or set keyring in the conf".to_string(),
        libc::EACCES | libc::EPERM => "authentication failed; check --id and that the key in the keyring matches `ceph auth get` for this client".to_string(),
        libc::EINVAL => "the conf has no usable mon_host; check -c/--conf or CEPH_CONF".to_string(),
        _ => return Error::ceph("connect to cluster as", what, ret),
    };
    Error::ceph_with_hint("connect to cluster as", what, ret, hint)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn connect_errors_keep_their_errno() {
        let opts = ConnectOptions {
            timeout: Duration::from_secs(3),
            ..ConnectOptions::default()
        };
        for (errno, needle) in [
            (libc::ETIMEDOUT, "no monitor answered within 3 s"),
            (libc::EINTR, "--connect-timeout"),
            (libc::ENOENT, "--keyring"),
            (libc::EACCES, "authentication failed"),
            (libc::EPERM, "authentication failed"),
            (libc::EINVAL, "mon_host"),
            (libc::ECONNREFUSED, "client.admin"),
        ] {
            let e = connect_error(-errno, "client.admin", &opts);
            assert_eq!(e.errno(), Some(errno), "{e}");
            let s = e.to_string();
            assert!(s.starts_with("connect to cluster as client.admin: "), "{s}");
            assert!(s.contains(needle) && !s.contains('\n'), "{s}");
        }
    }
}
