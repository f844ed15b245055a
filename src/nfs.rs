//! NFSv3 shares through a userspace client (`nfs://HOST[:PORT]/EXPORT/FILE`), as qemu and fio
//! reach them: no mount, no root. Shared by the `nfs://` bench target and the NFS copy sink.
//! One RPC is in flight per connection; callers open as many connections as they want
//! requests in flight.
use crate::error::{Error, Result};
use nfs3_client::nfs3_types::nfs3::{
    self, createhow3, diropargs3, filename3, nfs_fh3, nfsstat3, sattr3, Nfs3Option, Nfs3Result,
};
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Client, Nfs3ConnectionBuilder};
use std::time::Duration;

/// How long a mount may take before the server counts as unreachable.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(15);

/// Where an `nfs://` URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NfsUrl {
    /// Server address.
    pub host: String,
    /// NFS port, if given in the URL.
    pub port: Option<u16>,
    /// Export path, e.g. `/export`.
    pub export: String,
    /// File name inside the export (may contain `/`).
    pub file: String,
}

impl NfsUrl {
    /// Parses `nfs://HOST[:PORT]/EXPORT/FILE`; the last path component is the file.
    pub fn parse(url: &str) -> Result<NfsUrl> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "invalid NFS target '{url}': {why}; use nfs://HOST[:PORT]/EXPORT/FILE"
            ))
        };
        let rest = url
            .strip_prefix("nfs://")
            .ok_or_else(|| bad("no nfs:// prefix"))?;
        let (hostport, path) = rest.split_once('/').ok_or_else(|| bad("no export path"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?)),
            None => (hostport, None),
        };
        let (export, file) = path
            .rsplit_once('/')
            .ok_or_else(|| bad("no file name after the export"))?;
        if host.is_empty() || export.is_empty() || file.is_empty() {
            return Err(bad("empty host, export or file name"));
        }
        Ok(NfsUrl {
            host: host.into(),
            port,
            export: format!("/{export}"),
            file: file.into(),
        })
    }

    /// The file's name in its directory (the last component of [`NfsUrl::file`]).
    pub fn leaf(&self) -> &str {
        self.file.rsplit('/').next().unwrap_or(&self.file)
    }
}

impl std::fmt::Display for NfsUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        write!(f, "nfs://{}{port}{}/{}", self.host, self.export, self.file)
    }
}

/// A connection to the share.
pub type Client = Nfs3Client<TokioIo<tokio::net::TcpStream>>;

/// A single-threaded runtime for the client's calls.
pub fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("start the NFS client runtime", e))
}

/// An error of `what` (a verb: "look up", "write") on `url`.
pub fn nfs_err(what: &str, url: &NfsUrl, e: impl std::fmt::Display) -> Error {
    Error::Other(format!("{what} {url}: {e}"))
}

/// Mounts the export; returns a client and the export's root handle.
pub async fn connect(url: &NfsUrl, mount_port: Option<u16>) -> Result<(Client, nfs_fh3)> {
    let cred = opaque_auth::auth_unix(&auth_unix {
        machinename: Opaque::borrowed(b"rbdkit"),
        ..auth_unix::default()
    });
    let mut b = Nfs3ConnectionBuilder::new(TokioConnector, &url.host, &url.export)
        .connect_from_privileged_port(false)
        .credential(cred);
    if let Some(p) = url.port {
        b = b.nfs3_port(p);
    }
    if let Some(p) = mount_port {
        b = b.mount_port(p);
    }
    let conn = tokio::time::timeout(MOUNT_TIMEOUT, b.mount())
        .await
        .map_err(|_| {
            nfs_err(
                "mount (timed out after 15 s)",
                url,
                "no answer; check the address, ports and that the server runs",
            )
        })?
        .map_err(|e| {
            let e = e.to_string();
            if e.contains("MNT3ERR_ACCES") || e.contains("MNT3ERR_NOENT") {
                let why = format!(
                    "{e}: the server does not export {} to this host; the URL is nfs://HOST[:PORT]/EXPORT/FILE",
                    url.export
                );
                nfs_err("mount", url, why)
            } else {
                nfs_err("mount", url, e)
            }
        })?;
    let root = conn.root_nfs_fh3();
    Ok((conn.into_nfs3_client(), root))
}

/// Looks `name` up in `dir`: its handle, or `None` when it does not exist.
pub async fn lookup(
    c: &mut Client,
    dir: &nfs_fh3,
    name: &str,
    url: &NfsUrl,
) -> Result<Option<nfs_fh3>> {
    let r = c
        .lookup(&nfs3::LOOKUP3args {
            what: diropargs3 {
                dir: dir.clone(),
                name: filename3::from(name.as_bytes()),
            },
        })
        .await
        .map_err(|e| nfs_err("look up", url, e))?;
    match r {
        Nfs3Result::Ok(ok) => Ok(Some(ok.object)),
        Nfs3Result::Err((nfsstat3::NFS3ERR_NOENT, _)) => Ok(None),
        Nfs3Result::Err((s, _)) => Err(nfs_err("look up", url, s)),
    }
}

/// The handle of the directory the URL's file is in (every directory must exist).
pub async fn parent_dir(c: &mut Client, root: nfs_fh3, url: &NfsUrl) -> Result<nfs_fh3> {
    let mut dir = root;
    let parts: Vec<&str> = url.file.split('/').collect();
    for d in &parts[..parts.len() - 1] {
        dir = lookup(c, &dir, d, url)
            .await?
            .ok_or_else(|| nfs_err("look up", url, format!("no directory '{d}' on the share")))?;
    }
    Ok(dir)
}

/// Creates `name` in `dir` with `size` bytes (sparse) and mode 0644; fails if it exists
/// (GUARDED: a file that appeared since a lookup is never truncated).
pub async fn create_new(
    c: &mut Client,
    dir: &nfs_fh3,
    name: &str,
    size: u64,
    url: &NfsUrl,
) -> Result<nfs_fh3> {
    let attrs = sattr3 {
        size: Nfs3Option::Some(size),
        mode: Nfs3Option::Some(0o644),
        ..sattr3::default()
    };
    let r = c
        .create(&nfs3::CREATE3args {
            where_: diropargs3 {
                dir: dir.clone(),
                name: filename3::from(name.as_bytes()),
            },
            how: createhow3::GUARDED(attrs),
        })
        .await
        .map_err(|e| nfs_err("create", url, e))?;
    match r {
        Nfs3Result::Ok(ok) => match ok.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => Err(nfs_err("create", url, "the server returned no file handle")),
        },
        Nfs3Result::Err((s, _)) => Err(nfs_err("create", url, s)),
    }
}

/// Removes `name` from `dir`.
pub async fn remove(c: &mut Client, dir: &nfs_fh3, name: &str, url: &NfsUrl) -> Result<()> {
    match c
        .remove(&nfs3::REMOVE3args {
            object: diropargs3 {
                dir: dir.clone(),
                name: filename3::from(name.as_bytes()),
            },
        })
        .await
        .map_err(|e| nfs_err("remove", url, e))?
    {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((s, _)) => Err(nfs_err("remove", url, s)),
    }
}

/// Sets the size of a file (SETATTR): shrinking frees what lies past the new size, growing
/// adds a hole.
pub async fn set_size(c: &mut Client, fh: &nfs_fh3, size: u64, url: &NfsUrl) -> Result<()> {
    let args = nfs3::SETATTR3args {
        object: fh.clone(),
        new_attributes: sattr3 {
            size: Nfs3Option::Some(size),
            ..sattr3::default()
        },
        guard: Nfs3Option::None,
    };
    match c
        .setattr(&args)
        .await
        .map_err(|e| nfs_err("set the size of", url, e))?
    {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((s, _)) => Err(nfs_err("set the size of", url, s)),
    }
}

/// (size, used) of a file.
pub async fn getattr(c: &mut Client, fh: &nfs_fh3, url: &NfsUrl) -> Result<(u64, u64)> {
    match c
        .getattr(&nfs3::GETATTR3args { object: fh.clone() })
        .await
        .map_err(|e| nfs_err("getattr", url, e))?
    {
        Nfs3Result::Ok(ok) => Ok((ok.obj_attributes.size, ok.obj_attributes.used)),
        Nfs3Result::Err((s, _)) => Err(nfs_err("getattr", url, s)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = NfsUrl::parse("nfs://127.0.0.1:2049/export/dir/vol-1").unwrap();
        assert_eq!(
            u,
            NfsUrl {
                host: "127.0.0.1".into(),
                port: Some(2049),
                export: "/export/dir".into(),
                file: "vol-1".into()
            }
        );
        assert_eq!(u.to_string(), "nfs://127.0.0.1:2049/export/dir/vol-1");
        assert_eq!(NfsUrl::parse("nfs://h/e/f").unwrap().port, None);
        for bad in [
            "http://x/e/f",
            "nfs://h",
            "nfs://h/f",
            "nfs://h:x/e/f",
            "nfs:///e/f",
        ] {
            assert!(NfsUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
