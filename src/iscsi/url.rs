//! `iscsi://HOST[:PORT]/IQN/LUN`, the form libiscsi, qemu and fio's libiscsi engine use.
use crate::error::{Error, Result};

/// The iSCSI port when a URL names none (IANA's, and tgtd's default).
pub const DEFAULT_PORT: u16 = 3260;

/// Where an `iscsi://` URL points.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IscsiUrl {
    /// The portal's host: a name, an IPv4 address, or an IPv6 address without brackets.
    pub host: String,
    /// The portal's port, if given (default 3260).
    pub port: Option<u16>,
    /// The target's name, e.g. `iqn.2010-10.org.openstack:volume-1`.
    pub iqn: String,
    /// The logical unit number.
    pub lun: u16,
}

impl IscsiUrl {
    /// Parses `iscsi://HOST[:PORT]/IQN/LUN` (an IPv6 host in brackets: `[::1]:3260`).
    pub fn parse(url: &str) -> Result<IscsiUrl> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "invalid iSCSI target '{url}': {why}; use iscsi://HOST[:PORT]/IQN/LUN"
            ))
        };
        if url.contains('\0') {
            return Err(bad("NUL byte"));
        }
        let rest = url
            .strip_prefix("iscsi://")
            .ok_or_else(|| bad("no iscsi:// prefix"))?;
        let (hostport, rest) = rest.split_once('/').ok_or_else(|| bad("no target IQN"))?;
        let (host, port) = split_host_port(hostport).ok_or_else(|| bad("bad host or port"))?;
        let (iqn, lun) = rest
            .rsplit_once('/')
            .ok_or_else(|| bad("no LUN after the IQN"))?;
        if host.is_empty() || iqn.is_empty() || iqn.contains('/') {
            return Err(bad("empty host or IQN, or a '/' in the IQN"));
        }
        if !(iqn.starts_with("iqn.") || iqn.starts_with("eui.") || iqn.starts_with("naa.")) {
            return Err(bad("the target name must start with iqn., eui. or naa."));
        }
        let lun = lun
            .parse::<u16>()
            .ok()
            .filter(|&l| l < 16384)
            .ok_or_else(|| bad("the LUN must be a number, 0..16383"))?;
        Ok(IscsiUrl {
            host: host.into(),
            port,
            iqn: iqn.into(),
            lun,
        })
    }

    /// The portal as libiscsi takes it: `HOST:PORT` (`[V6]:PORT`), the port always given.
    pub fn portal(&self) -> String {
        let port = self.port.unwrap_or(DEFAULT_PORT);
        if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        }
    }

    /// `iscsi://HOST[:PORT]`, the portal as a URL.
    pub fn portal_url(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let port = self.port.map(|p| format!(":{p}")).unwrap_or_default();
        format!("iscsi://{host}{port}")
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    if let Some(rest) = s.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            p => Some((host, Some(p.strip_prefix(':')?.parse().ok()?))),
        };
    }
    match s.split_once(':') {
        Some((h, p)) => Some((h, Some(p.parse().ok()?))),
        None => Some((s, None)),
    }
}

impl std::fmt::Display for IscsiUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.portal_url(), self.iqn, self.lun)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let u =
            IscsiUrl::parse("iscsi://127.0.0.1:3261/iqn.2010-10.org.openstack:volume-1/1").unwrap();
        assert_eq!(
            u,
            IscsiUrl {
                host: "127.0.0.1".into(),
                port: Some(3261),
                iqn: "iqn.2010-10.org.openstack:volume-1".into(),
                lun: 1
            }
        );
        assert_eq!(u.portal(), "127.0.0.1:3261");
        assert_eq!(
            u.to_string(),
            "iscsi://127.0.0.1:3261/iqn.2010-10.org.openstack:volume-1/1"
        );
        let v6 = IscsiUrl::parse("iscsi://[::1]/iqn.x:y/0").unwrap();
        assert_eq!(
            (v6.host.as_str(), v6.portal()),
            ("::1", "[::1]:3260".into())
        );
        assert_eq!(v6.to_string(), "iscsi://[::1]/iqn.x:y/0");
        for bad in [
            "nfs://h/iqn.x/1",
            "iscsi://h",
            "iscsi://h/iqn.x",
            "iscsi://h/iqn.x/",
            "iscsi://h/iqn.x/a",
            "iscsi://h/iqn.x/70000",
            "iscsi://h:x/iqn.x/1",
            "iscsi:///iqn.x/1",
            "iscsi://h//1",
            "iscsi://h/target/1",
            "iscsi://h/iqn.a/b/1",
            "iscsi://[::1/iqn.x/1",
        ] {
            assert!(IscsiUrl::parse(bad).is_err(), "{bad}");
        }
    }
}
