//! Options every subcommand takes, named as the `rbd` CLI names them.
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Output format of a command's result.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Human-readable text.
    Plain,
    /// One JSON object on stdout.
    Json,
}

/// Global options (accepted before or after the subcommand).
#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Ceph configuration file (default: $CEPH_CONF, then the standard search path).
    #[arg(short = 'c', long = "conf", global = true, env = "CEPH_CONF")]
    pub conf: Option<PathBuf>,
    /// Client id without the `client.` prefix (e.g. `cinder`). Also read from $CEPH_ARGS
    /// (`--id`, `--name`, `--keyring`, `--conf`, `--cluster`); flags given here win.
    #[arg(long = "id", alias = "user", global = true)]
    pub id: Option<String>,
    /// Client name with the prefix (e.g. `client.cinder`); the same as `--id cinder`.
    #[arg(short = 'n', long = "name", global = true, conflicts_with = "id")]
    pub name: Option<String>,
    /// Keyring file holding the client's key (the key itself is never taken on the command line).
    #[arg(long, global = true)]
    pub keyring: Option<PathBuf>,
    /// Cluster name (selects /etc/ceph/$cluster.conf when no conf is given).
    #[arg(long, global = true)]
    pub cluster: Option<String>,
    /// Seconds to wait for the monitors before giving up.
    #[arg(long = "connect-timeout", global = true, default_value = "30", value_parser = parse_secs)]
    pub connect_timeout: std::time::Duration,
    /// Fail cluster I/O that gets no answer for this long (e.g. 60s) instead of waiting
    /// forever on a full or broken cluster. Default: wait (librados' behaviour).
    #[arg(long = "op-timeout", global = true, value_parser = parse_secs)]
    pub op_timeout: Option<std::time::Duration>,
    /// Output format.
    #[arg(long, global = true, value_enum, default_value_t = Format::Plain)]
    pub format: Format,
    /// Indent JSON output (`--format json`); without it JSON is one line, as with `rbd`.
    #[arg(long = "pretty-format", global = true)]
    pub pretty_format: bool,
    /// Do not draw progress bars.
    #[arg(long = "no-progress", global = true)]
    pub no_progress: bool,
    /// More detail on stderr (repeat for more).
    #[arg(short = 'v', long = "verbose", global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

fn parse_secs(s: &str) -> Result<std::time::Duration, String> {
    rbdkit::units::parse_duration(s).map_err(|e| e.to_string())
}

impl Global {
    /// True when the result should be printed as JSON.
    pub fn json(&self) -> bool {
        self.format == Format::Json
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
            bulk_writes: false,
        })
    }

    /// Connects to the cluster, warning first if the keyring is readable by others.
    pub fn connect(&self) -> rbdkit::Result<rbdkit::ceph::Cluster> {
        self.connect_with(self.connect_options()?)
    }

    /// Like [`Global::connect`], with librbd tuned for an import's bulk writes.
    pub fn connect_for_bulk_writes(&self) -> rbdkit::Result<rbdkit::ceph::Cluster> {
        self.connect_with(rbdkit::ceph::ConnectOptions {
            bulk_writes: true,
            ..self.connect_options()?
        })
    }

    fn connect_with(
        &self,
        opts: rbdkit::ceph::ConnectOptions,
    ) -> rbdkit::Result<rbdkit::ceph::Cluster> {
        if let Some(k) = &opts.keyring {
            warn_if_keyring_exposed(k);
        }
        rbdkit::ceph::Cluster::connect(&opts)
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
