//! The identity options in `CEPH_ARGS`, read the way Ceph's own argument parsing reads them
//! (`ceph_argparse_early_args`): the environment's words come first, the command line after, so
//! a flag on the command line wins; within `CEPH_ARGS` the last occurrence wins.
//!
//! librados' `rados_conf_parse_env` applies the config options in `CEPH_ARGS`, but the client
//! name is fixed when the handle is created, so `--id`/`--name` have to be read before that.
use crate::error::{Error, Result};
use std::path::PathBuf;

/// Who to connect as and where the conf is, as `CEPH_ARGS` (or a command line) names them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Identity {
    /// Client id without `client.`.
    pub id: Option<String>,
    /// Keyring file.
    pub keyring: Option<PathBuf>,
    /// Conf file.
    pub conf: Option<PathBuf>,
    /// Cluster name.
    pub cluster: Option<String>,
}

impl Identity {
    /// Parses the identity options out of a `CEPH_ARGS` value (split on whitespace, as Ceph
    /// does); other words are left to librados. `--opt value` and `--opt=value` both work, and
    /// `-` and `_` are the same inside option names.
    pub fn from_ceph_args(args: &str) -> Result<Identity> {
        let words: Vec<&str> = args.split_whitespace().collect();
        let mut id = Identity::default();
        let mut i = 0;
        while i < words.len() {
            let w = words[i];
            let (flag, inline) = match w.split_once('=') {
                Some((f, v)) if f.starts_with("--") => (f.replace('_', "-"), Some(v)),
                _ => (w.replace('_', "-"), None),
            };
            let key = match flag.as_str() {
                "--id" | "--user" | "-i" => "id",
                "--name" | "-n" => "name",
                "--keyring" | "-k" => "keyring",
                "--conf" | "-c" => "conf",
                "--cluster" => "cluster",
                _ => {
                    i += 1;
                    continue;
                }
            };
            let value = match inline {
                Some(v) => v.to_string(),
                None => {
                    i += 1;
                    match words.get(i) {
                        Some(v) => v.to_string(),
                        None => {
                            return Err(Error::InvalidInput(format!(
                                "CEPH_ARGS: {flag} needs a value"
                            )))
                        }
                    }
                }
            };
            match key {
                "id" => id.id = Some(check_client_id(&value, "CEPH_ARGS: --id")?),
                "name" => id.id = Some(client_id_from_name(&value, "CEPH_ARGS: --name")?),
                "keyring" => id.keyring = Some(PathBuf::from(value)),
                "conf" => id.conf = Some(PathBuf::from(value)),
                _ => id.cluster = Some(value),
            }
            i += 1;
        }
        Ok(id)
    }

    /// `CEPH_ARGS` from the environment (empty when unset).
    pub fn from_env() -> Result<Identity> {
        match std::env::var("CEPH_ARGS") {
            Ok(s) => Identity::from_ceph_args(&s),
            Err(_) => Ok(Identity::default()),
        }
    }
}

/// A client id as `--id` takes it: refuses `client.x` (which would mean `client.client.x`)
/// with the fix, and empty ids.
pub fn check_client_id(id: &str, flag: &str) -> Result<String> {
    if let Some(rest) = id.strip_prefix("client.") {
        return Err(Error::InvalidInput(format!(
            "{flag} takes the id without the `client.` prefix: use --id {rest} (or --name {id})"
        )));
    }
    if id.is_empty() {
        return Err(Error::InvalidInput(format!("{flag}: empty client id")));
    }
    Ok(id.to_string())
}

/// The id of a `client.x` name as `-n/--name` takes it; other entity types are refused.
pub fn client_id_from_name(name: &str, flag: &str) -> Result<String> {
    match name.split_once('.') {
        Some(("client", rest)) if !rest.is_empty() => Ok(rest.to_string()),
        _ => Err(Error::InvalidInput(format!(
            "{flag} '{}': expected client.ID (e.g. client.cinder)",
            name.escape_debug()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_options_in_both_forms() {
        let a = Identity::from_ceph_args(
            "--id glance --keyring=/k  -c /etc/c.conf --cluster backup --rbd_cache=false",
        )
        .unwrap();
        assert_eq!(a.id.as_deref(), Some("glance"));
        assert_eq!(a.keyring, Some(PathBuf::from("/k")));
        assert_eq!(a.conf, Some(PathBuf::from("/etc/c.conf")));
        assert_eq!(a.cluster.as_deref(), Some("backup"));
    }

    #[test]
    fn last_of_id_and_name_wins() {
        let a = Identity::from_ceph_args("--user a -n client.b").unwrap();
        assert_eq!(a.id.as_deref(), Some("b"));
        let a = Identity::from_ceph_args("--name=client.b -i c").unwrap();
        assert_eq!(a.id.as_deref(), Some("c"));
        assert_eq!(Identity::from_ceph_args("").unwrap(), Identity::default());
    }

    #[test]
    fn bad_names_are_refused() {
        assert!(Identity::from_ceph_args("--id client.glance").is_err());
        assert!(Identity::from_ceph_args("--name glance").is_err());
        assert!(Identity::from_ceph_args("--name osd.0").is_err());
        assert!(Identity::from_ceph_args("--id").is_err());
        let e = check_client_id("client.glance", "--id")
            .unwrap_err()
            .to_string();
        assert!(e.contains("--id glance"), "{e}");
    }
}
