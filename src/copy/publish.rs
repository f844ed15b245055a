//! How an output file appears under its name, the same on every target that has names (a
//! local path, an NFS share, a GlusterFS volume): it is written under a hidden temporary name
//! in the same directory and published only when complete and durable, so a reader (Cinder,
//! a second copy) never sees half a volume; a failed copy removes the temporary file.
use crate::error::{Error, Result};
use std::fmt::Display;

/// The hidden name a file called `leaf` is written under until it is complete: unique per
/// process, so two copies to the same name never write into one file.
pub fn partial_name(leaf: &str) -> String {
    format!(".{leaf}.rbdkit-partial.{}", std::process::id())
}

/// The refusal of a destination that exists. An operational failure (exit 1), as EEXIST is
/// for an image: the command was well formed, the target was not as expected.
pub fn exists_error(shown: impl Display) -> Error {
    Error::Other(format!(
        "{shown} already exists: choose another name or pass --overwrite"
    ))
}

/// A target's name operations, for [`publish`].
pub(crate) trait Publish {
    /// The final name, as errors show it.
    fn shown(&self) -> String;
    /// Makes the final name a hard link to the temporary file; `Ok(false)` when a file of
    /// that name exists.
    fn link_final(&mut self) -> Result<bool>;
    /// Renames the temporary file over the final name.
    fn rename_final(&mut self) -> Result<()>;
    /// Removes the temporary name.
    fn remove_partial(&mut self) -> Result<()>;
}

/// Publishes the finished temporary file of `t`: with `overwrite` a rename over the final
/// name; otherwise a hard link, which fails if a file of that name appeared during the copy
/// (it is never replaced: the check before the copy is not enough), then the temporary name
/// goes.
pub(crate) fn publish(t: &mut dyn Publish, overwrite: bool) -> Result<()> {
    if overwrite {
        return t.rename_final();
    }
    if !t.link_final()? {
        return Err(exists_error(t.shown()));
    }
    t.remove_partial()
}
