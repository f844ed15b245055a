//! `gluster://HOST[:PORT]/VOLUME/PATH`, the form qemu and Cinder's GlusterFS driver use.
use crate::error::{Error, Result};

/// Where a `gluster://` URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GlusterUrl {
    /// The volfile server (glusterd).
    pub host: String,
    /// glusterd's port, if given (default 24007).
    pub port: Option<u16>,
    /// The volume's name.
    pub volume: String,
    /// The file's path inside the volume, without the leading `/` (may contain `/`).
    pub path: String,
}

impl GlusterUrl {
    /// Parses `gluster://HOST[:PORT]/VOLUME/PATH`.
    pub fn parse(url: &str) -> Result<GlusterUrl> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "invalid GlusterFS target '{url}': {why}; use gluster://HOST[:PORT]/VOLUME/PATH"
            ))
        };
        let rest = url
            .strip_prefix("gluster://")
            .ok_or_else(|| bad("no gluster:// prefix"))?;
        let (hostport, rest) = rest.split_once('/').ok_or_else(|| bad("no volume"))?;
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p.parse::<u16>().map_err(|_| bad("bad port"))?)),
            None => (hostport, None),
        };
        let (volume, path) = rest
            .split_once('/')
            .ok_or_else(|| bad("no file path after the volume"))?;
        if host.is_empty() || volume.is_empty() || path.is_empty() || path.ends_with('/') {
            return Err(bad("empty host, volume or file name"));
        }
        if path
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(bad("empty, '.' or '..' path component"));
        }
        if url.contains('\0') {
            return Err(bad("NUL byte"));
        }
        Ok(GlusterUrl {
            host: host.into(),
            port,
            volume: volume.into(),
            path: path.into(),
        })
    }

    /// The path as gfapi takes it: absolute inside the volume.
    pub fn abs_path(&self) -> String {
        format!("/{}", self.path)
    }

    /// The same URL with another file path in the same volume.
    pub fn with_path(&self, path: &str) -> GlusterUrl {
        GlusterUrl {
            path: path.into(),
            ..self.clone()
        }
    }

    /// The volume's URL, without the file: `gluster://HOST[:PORT]/VOLUME`.
    pub fn volume_url(&self) -> String {
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("gluster://{}{port}/{}", self.host, self.volume)
    }
}

impl std::fmt::Display for GlusterUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.volume_url(), self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u = GlusterUrl::parse("gluster://127.0.0.1:24007/vol1/dir/vol-1").unwrap();
        assert_eq!(
            u,
            GlusterUrl {
                host: "127.0.0.1".into(),
                port: Some(24007),
                volume: "vol1".into(),
                path: "dir/vol-1".into()
            }
        );
        assert_eq!(u.to_string(), "gluster://127.0.0.1:24007/vol1/dir/vol-1");
        assert_eq!(u.abs_path(), "/dir/vol-1");
        assert_eq!(u.volume_url(), "gluster://127.0.0.1:24007/vol1");
        assert_eq!(GlusterUrl::parse("gluster://h/v/f").unwrap().port, None);
        for bad in [
            "nfs://h/v/f",
            "gluster://h",
            "gluster://h/v",
            "gluster://h/v/",
            "gluster://h:x/v/f",
            "gluster:///v/f",
            "gluster://h//f",
            "gluster://h/v/a//b",
            "gluster://h/v/../f",
        ] {
            assert!(GlusterUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
