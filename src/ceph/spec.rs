//! `pool[/namespace]/image[@snap]`, the way the rbd CLI names images.
use crate::error::{Error, Result};
use serde::Serialize;
use std::fmt;
use std::str::FromStr;

/// An image (or snapshot) named by pool, optional namespace, image and optional snapshot.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct ImageSpec {
    /// Pool name.
    pub pool: String,
    /// RADOS namespace inside the pool, if any.
    pub namespace: Option<String>,
    /// Image name.
    pub image: String,
    /// Snapshot name, if any.
    pub snap: Option<String>,
}

impl ImageSpec {
    /// Parses `pool/image`, `pool/namespace/image`, each optionally followed by `@snap`.
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::InvalidInput(format!(
                "invalid image spec '{text}': {why}; expected POOL[/NAMESPACE]/IMAGE[@SNAP]"
            ))
        };
        let (path, snap) = match text.split_once('@') {
            Some((p, s)) => {
                if s.is_empty() || s.contains(['@', '/']) {
                    return Err(bad("bad snapshot name"));
                }
                (p, Some(s.to_string()))
            }
            None => (text, None),
        };
        let parts: Vec<&str> = path.split('/').collect();
        let (pool, namespace, image) = match parts.as_slice() {
            [pool, image] => (*pool, None, *image),
            [pool, ns, image] => (*pool, Some(ns.to_string()), *image),
            [_] => return Err(bad("the pool is missing")),
            _ => return Err(bad("too many '/'")),
        };
        if pool.is_empty() || image.is_empty() || namespace.as_deref() == Some("") {
            return Err(bad("empty pool, namespace or image name"));
        }
        if text.contains(char::is_whitespace) || text.contains('\0') {
            return Err(bad("names cannot contain spaces or NUL"));
        }
        Ok(ImageSpec {
            pool: pool.to_string(),
            namespace,
            image: image.to_string(),
            snap,
        })
    }

    /// The same spec without the snapshot part.
    pub fn without_snap(&self) -> ImageSpec {
        ImageSpec {
            snap: None,
            ..self.clone()
        }
    }

    /// The same spec with another image name (same pool and namespace, no snapshot).
    pub fn with_image(&self, image: &str) -> ImageSpec {
        ImageSpec {
            image: image.to_string(),
            snap: None,
            ..self.clone()
        }
    }

    /// Requires a snapshot part, naming the spec in the error.
    pub fn require_snap(&self) -> Result<&str> {
        self.snap.as_deref().ok_or_else(|| {
            Error::InvalidInput(format!("'{self}' names no snapshot: use POOL/IMAGE@SNAP"))
        })
    }

    /// Refuses a snapshot part where only an image makes sense.
    pub fn forbid_snap(&self) -> Result<()> {
        match self.snap {
            Some(_) => Err(Error::InvalidInput(format!(
                "'{self}' names a snapshot; give POOL/IMAGE"
            ))),
            None => Ok(()),
        }
    }
}

impl fmt::Display for ImageSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/", self.pool)?;
        if let Some(ns) = &self.namespace {
            write!(f, "{ns}/")?;
        }
        write!(f, "{}", self.image)?;
        if let Some(s) = &self.snap {
            write!(f, "@{s}")?;
        }
        Ok(())
    }
}

impl FromStr for ImageSpec {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        ImageSpec::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_round_trips() {
        for text in [
            "images/x",
            "images/x@snap",
            "volumes/ns1/vol-1",
            "volumes/ns1/vol-1@s",
        ] {
            assert_eq!(ImageSpec::parse(text).unwrap().to_string(), text);
        }
        let s = ImageSpec::parse("volumes/ns/v@s").unwrap();
        assert_eq!(s.pool, "volumes");
        assert_eq!(s.namespace.as_deref(), Some("ns"));
        assert_eq!(s.image, "v");
        assert_eq!(s.snap.as_deref(), Some("s"));
    }

    #[test]
    fn rejects_malformed() {
        for text in [
            "", "x", "/x", "p/", "p//i", "a/b/c/d", "p/i@", "p/i@a@b", "p/i x", "p/i@s/x",
        ] {
            let e = ImageSpec::parse(text).unwrap_err().to_string();
            assert!(e.contains("invalid image spec"), "{text}: {e}");
            assert!(!e.contains('\n'));
        }
    }

    #[test]
    fn snap_requirements_name_the_spec() {
        let s = ImageSpec::parse("images/x").unwrap();
        assert!(s
            .require_snap()
            .unwrap_err()
            .to_string()
            .contains("images/x"));
        assert!(ImageSpec::parse("images/x@s")
            .unwrap()
            .forbid_snap()
            .is_err());
    }
}
