//! Options every subcommand takes, named as the `rbd` CLI names them.
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// The OSD op timeout of bulk I/O when `--op-timeout` is not given.
const BULK_OP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// Output format of a command's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Plain,
    /// One JSON object on stdout.
    Json,
}

/// The heading global options are listed under in `--help`, apart from each command's own.
const GLOBAL: &str = "Global options";

/// Global options (accepted before or after the subcommand).
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Ceph configuration file (default: $CEPH_CONF, then the standard search path).
    #[arg(short = 'c', long = "conf", global = true, help_heading = GLOBAL, env = "CEPH_CONF")]
    pub conf: Option<PathBuf>,
    /// Client id without the `client.` prefix (e.g. `cinder`). Also read from $CEPH_ARGS
    /// (`--id`, `--name`, `--keyring`, `--conf`, `--cluster`); flags given here win.
    #[arg(long = "id", alias = "user", global = true, help_heading = GLOBAL)]
    pub id: Option<String>,
    /// Client name with the prefix (e.g. `client.cinder`); the same as `--id cinder`.
    #[arg(short = 'n', long = "name", global = true, help_heading = GLOBAL, conflicts_with = "id")]
    pub name: Option<String>,
    /// Keyring file holding the client's key (the key itself is never taken on the command line).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub keyring: Option<PathBuf>,
    /// Cluster name (selects /etc/ceph/$cluster.conf when no conf is given).
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub cluster: Option<String>,
    /// Seconds to wait for the monitors before giving up.
    #[arg(long = "connect-timeout", global = true, help_heading = GLOBAL, default_value = "30", value_parser = parse_secs)]
    pub connect_timeout: std::time::Duration,
    /// Fail cluster I/O that gets no answer for this long (e.g. 60s) instead of waiting
    /// forever on a full or broken cluster. Default: wait (librados' behaviour).
    #[arg(long = "op-timeout", global = true, help_heading = GLOBAL, value_parser = parse_secs)]
    pub op_timeout: Option<std::time::Duration>,
    /// Output format.
    #[arg(long, global = true, help_heading = GLOBAL, value_enum, default_value_t = Format::Plain)]
    pub format: Format,
    /// Indent JSON output (`--format json`); without it JSON is one line, as with `rbd`.
    #[arg(long = "pretty-format", global = true, help_heading = GLOBAL)]
    pub pretty_format: bool,
    /// Do not draw progress bars.
    #[arg(long = "no-progress", global = true, help_heading = GLOBAL)]
    pub no_progress: bool,
    /// More detail on stderr: -v names the conf file, client, keyring path and monitors used
    /// (never a key); -vv also lets librados and librbd log there at their configured levels.
    #[arg(short = 'v', long = "verbose", global = true, help_heading = GLOBAL, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// librados/librbd debug log on stderr at the levels Ceph developers ask for in a bug
    /// report (debug_rbd 20, debug_rados 20, debug_ms 1); implies -v. `--debug-rbd` and friends
    /// set one level.
    #[arg(long, global = true, help_heading = GLOBAL)]
    pub debug: bool,
    /// debug_rbd level (0-20, or LOG/MEMORY as Ceph takes it, e.g. 20/20), logged on stderr.
    #[arg(long = "debug-rbd", global = true, help_heading = GLOBAL, value_name = "LEVEL", value_parser = parse_debug_level)]
    pub debug_rbd: Option<String>,
    /// debug_rados level, logged on stderr.
    #[arg(long = "debug-rados", global = true, help_heading = GLOBAL, value_name = "LEVEL", value_parser = parse_debug_level)]
    pub debug_rados: Option<String>,
    /// debug_ms (messenger) level, logged on stderr.
    #[arg(long = "debug-ms", global = true, help_heading = GLOBAL, value_name = "LEVEL", value_parser = parse_debug_level)]
    pub debug_ms: Option<String>,
}

/// A Ceph debug level as `--debug-rbd 20` or `--debug-rbd 1/5` (log level / in-memory level).
/// Checked here so a typo is refused as usage, not passed on to fail inside librados.
fn parse_debug_level(s: &str) -> Result<String, String> {
    let level = |p: &str| p.parse::<u8>().ok().filter(|l| *l <= 30);
    let ok = match s.split_once('/') {
        Some((a, b)) => level(a).is_some() && level(b).is_some(),
        None => level(s).is_some(),
    };
    if ok {
        Ok(s.to_string())
    } else {
        Err(format!(
            "invalid debug level '{s}': a number 0..=30, or LOG/MEMORY such as 1/5"
        ))
    }
}

fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    rbdkit::units::parse_duration(s).map_err(|e| e.to_string())
}

impl Global {
    /// True when the result should be printed as JSON.
    pub fn json(&self) -> bool {
        self.format == Format::Json
    }

    /// The librados/librbd debug settings asked for, as (option, level): `--debug` sets the
    /// usual three, each `--debug-*` flag overrides its own.
    pub fn debug_settings(&self) -> Vec<(String, String)> {
        let preset = |on: &str| self.debug.then(|| on.to_string());
        [
            ("debug_rbd", self.debug_rbd.clone().or_else(|| preset("20"))),
            (
                "debug_rados",
                self.debug_rados.clone().or_else(|| preset("20")),
            ),
            ("debug_ms", self.debug_ms.clone().or_else(|| preset("1"))),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
    }

    /// How much to tell on stderr: `--debug` and the `--debug-*` flags count as -v.
    pub fn verbosity(&self) -> u8 {
        if self.debug_settings().is_empty() {
            self.verbose
        } else {
            self.verbose.max(1)
        }
    }
}

#[cfg(feature = "rbd")]
impl Global {
    /// Connection options from the global flags, then `CEPH_ARGS` (as `rbd` reads it: a flag on
    /// the command line wins), then `CEPH_CONF` for the conf file.
    pub fn connect_options(&self) -> rbdkit::Result<rbdkit::ceph::ConnectOptions> {
        use rbdkit::ceph::{check_client_id, client_id_from_name, Identity};
        let env = Identity::from_env()?;
        let id = match (&self.name, &self.id) {
            (Some(n), _) => Some(client_id_from_name(n, "--name")?),
            (None, Some(i)) => Some(check_client_id(i, "--id")?),
            (None, None) => env.id,
        };
        // clap fills `conf` from CEPH_CONF too; `-c` in CEPH_ARGS beats that, not a `-c` flag.
        let conf_from_env_var =
            self.conf.is_some() && self.conf == std::env::var_os("CEPH_CONF").map(PathBuf::from);
        let conf = if conf_from_env_var {
            env.conf.or_else(|| self.conf.clone())
        } else {
            self.conf.clone().or(env.conf)
        };
        Ok(rbdkit::ceph::ConnectOptions {
            conf,
            id,
            keyring: self.keyring.clone().or(env.keyring),
            cluster: self.cluster.clone().or(env.cluster),
            timeout: self.connect_timeout,
            op_timeout: self.op_timeout,
            librados_log: self.verbose >= 2,
            debug: self.debug_settings(),
            bulk_io: false,
        })
    }

    /// Connects to the cluster, warning first if the keyring is readable by others.
    pub fn connect(&self) -> rbdkit::Result<rbdkit::ceph::Cluster> {
        self.connect_with(self.connect_options()?)
    }

    /// Like [`Global::connect`], with librbd tuned for one pass of bulk reads and writes (an
    /// import, export, copy, checksum, backup or restore), and an OSD op timeout of 120 s
    /// unless `--op-timeout` says otherwise: a full cluster pauses writes forever, and a
    /// bounded timeout lets the command fail, name the condition and clean up (120 s is far
    /// beyond any healthy write; a backup into a pool that filled up hung without it).
    pub fn connect_for_bulk_io(&self) -> rbdkit::Result<rbdkit::ceph::Cluster> {
        let mut opts = self.connect_options()?;
        opts.bulk_io = true;
        opts.op_timeout = opts.op_timeout.or(Some(BULK_OP_TIMEOUT));
        self.connect_with(opts)
    }

    fn connect_with(
        &self,
        opts: rbdkit::ceph::ConnectOptions,
    ) -> rbdkit::Result<rbdkit::ceph::Cluster> {
        if let Some(k) = &opts.keyring {
            warn_if_keyring_exposed(k);
        }
        let verbose = self.verbosity() >= 1;
        if verbose {
            let debug: Vec<String> = opts.debug.iter().map(|(k, v)| format!("{k}={v}")).collect();
            eprintln!(
                "rbdkit: connecting as {} to cluster {} with conf {} (connect timeout {} s{}{})",
                opts.client_name(),
                opts.cluster.as_deref().unwrap_or("ceph"),
                describe_conf(&opts),
                opts.timeout.as_secs(),
                if debug.is_empty() { "" } else { ", " },
                debug.join(" ")
            );
        }
        let cluster = rbdkit::ceph::Cluster::connect(&opts)?;
        if verbose {
            // Paths and addresses only: the key itself is never read out of librados.
            let get = |k: &str| match cluster.conf_get(k) {
                Ok(v) if v.is_empty() => "(none)".to_string(),
                Ok(v) => v,
                Err(e) => format!("(unreadable: {e})"),
            };
            eprintln!(
                "rbdkit: connected to fsid {} via mon_host {}, keyring {}",
                cluster
                    .fsid()
                    .unwrap_or_else(|e| format!("(unreadable: {e})")),
                get("mon_host"),
                get("keyring")
            );
        }
        Ok(cluster)
    }
}

/// The conf file librados reads: the one given, or the first of Ceph's search path that exists.
#[cfg(feature = "rbd")]
fn describe_conf(opts: &rbdkit::ceph::ConnectOptions) -> String {
    if let Some(p) = &opts.conf {
        return p.display().to_string();
    }
    let cluster = opts.cluster.as_deref().unwrap_or("ceph");
    let mut search = vec![PathBuf::from(format!("/etc/ceph/{cluster}.conf"))];
    if let Some(home) = std::env::var_os("HOME") {
        search.push(PathBuf::from(home).join(format!(".ceph/{cluster}.conf")));
    }
    search.push(PathBuf::from(format!("{cluster}.conf")));
    match search.iter().find(|p| p.exists()) {
        Some(p) => format!("{} (found on the default search path)", p.display()),
        None => format!(
            "none (none of {} exists)",
            search
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A keyring others can read leaks the client's key; say so (never what the key is).
#[cfg(feature = "rbd")]
fn warn_if_keyring_exposed(path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        let mode = meta.permissions().mode();
        if mode & 0o077 != 0 {
            eprintln!(
                "rbdkit: warning: keyring {} is readable by other users (mode {:o}); run `chmod 600 {}`",
                path.display(),
                mode & 0o777,
                path.display()
            );
        }
    }
}
