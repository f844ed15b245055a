//! The safety gate for files an image names: backing files and external data files.
//!
//! An uploaded image is written by an attacker, and a qcow2 header may name any path of the
//! host (`/etc/shadow`, a keyring, `/dev/vda`, `../../x`, a symlink out of the upload
//! directory): a converter that follows the name copies that file into the output, which the
//! uploader then reads back (OSSA-2024-001, CVE-2024-32498). So by default nothing an image
//! names is opened. With [`FilePolicy::allow`] a name is followed only when it is a plain path
//! (no `json:` or protocol prefix), and the file actually opened is a regular file that lies,
//! after every symlink is resolved, under the directory of the image the user handed us or
//! under one of the directories the user allowed.
//!
//! The check is made on the opened descriptor (its type by `fstat`, its location by the
//! kernel's own name for it in `/proc/self/fd`), not on the name before opening, so a symlink
//! swapped in between the check and the open cannot escape.
use crate::error::{Error, Result};
use crate::text::escape;
use std::fs::File;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Which files named inside an image may be opened.
#[derive(Clone, Debug, Default)]
pub struct FilePolicy {
    allow: bool,
    /// Directories (canonical) under which named files may lie.
    dirs: Vec<PathBuf>,
}

/// A file named inside an image, opened after the policy allowed it.
#[derive(Debug)]
pub struct NamedFile {
    /// The open file (read-only).
    pub file: File,
    /// The name resolved against the naming image's directory, before symlinks: what
    /// relative names inside this file are resolved against, as qemu does.
    pub path: PathBuf,
    /// Where it really is: the kernel's name for the open descriptor.
    pub real_path: PathBuf,
}

/// The flag that lets an image name files, quoted in every refusal.
pub const ALLOW_FLAG: &str = "--allow-backing-files";

impl FilePolicy {
    /// Nothing an image names is opened: the default, and the only choice for a stream.
    pub fn refuse() -> FilePolicy {
        FilePolicy::default()
    }

    /// Named files are followed if they lie under the image's own directory (added by
    /// [`FilePolicy::with_image_dir`] when the image is opened) or under one of `dirs`.
    pub fn allow(dirs: &[PathBuf]) -> Result<FilePolicy> {
        let dirs = dirs
            .iter()
            .map(|d| {
                let c = std::fs::canonicalize(d).map_err(|e| {
                    Error::InvalidInput(format!(
                        "--backing-dir {}: {e}: give an existing directory",
                        d.display()
                    ))
                })?;
                if !c.is_dir() {
                    return Err(Error::InvalidInput(format!(
                        "--backing-dir {}: not a directory",
                        d.display()
                    )));
                }
                Ok(c)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(FilePolicy { allow: true, dirs })
    }

    /// Whether an image may name files at all.
    pub fn allows_named_files(&self) -> bool {
        self.allow
    }

    /// The directories named files may lie under.
    pub fn dirs(&self) -> &[PathBuf] {
        &self.dirs
    }

    /// This policy with the directory of the image at `image` (the one the user handed us,
    /// not one named inside it) added to the allowed directories.
    pub fn with_image_dir(&self, image: &Path) -> FilePolicy {
        let mut p = self.clone();
        if p.allow {
            let dir = std::fs::canonicalize(image)
                .ok()
                .and_then(|c| c.parent().map(Path::to_path_buf));
            if let Some(d) = dir {
                if !p.dirs.contains(&d) {
                    p.dirs.push(d);
                }
            }
        }
        p
    }

    /// Checks `name`, which the image `image` (as shown in errors) names as its `what`
    /// ("backing file", "external data file"), resolves it against `dir` (the directory of
    /// the image that names it) and opens it, or says why not in one line.
    pub fn open_named(&self, image: &str, dir: &Path, name: &str, what: &str) -> Result<NamedFile> {
        let shown = escape(name);
        let refuse = |why: String| Error::bad_image(image, why);
        if !self.allow {
            return Err(refuse(format!(
                "names {what} '{shown}': refused, an image must not make rbdkit read other files (pass {ALLOW_FLAG} if you trust it, or flatten it with qemu-img convert first)"
            )));
        }
        if let Some(kind) = non_file_name(name) {
            return Err(refuse(format!(
                "names {what} '{shown}', {kind}: refused even with {ALLOW_FLAG} (only plain file names are followed)"
            )));
        }
        let path = if Path::new(name).is_absolute() {
            PathBuf::from(name)
        } else {
            dir.join(name)
        };
        // O_NONBLOCK: opening a FIFO must not wait for a writer; the type is checked next.
        let file = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&path)
            .map_err(|e| {
                let why = match e.kind() {
                    std::io::ErrorKind::NotFound => "not found".to_string(),
                    _ => format!("cannot be opened ({e})"),
                };
                refuse(format!(
                    "{what} '{shown}' {why}; relative names are resolved against the image's directory: restore it or rebase the image"
                ))
            })?;
        let meta = file
            .metadata()
            .map_err(|e| Error::io(format!("stat {what} of {image}"), e))?;
        let t = meta.file_type();
        if !t.is_file() {
            let kind = if t.is_block_device() {
                "a block device"
            } else if t.is_char_device() {
                "a character device"
            } else if t.is_fifo() {
                "a FIFO"
            } else if t.is_socket() {
                "a socket"
            } else if t.is_dir() {
                "a directory"
            } else {
                "not a regular file"
            };
            return Err(refuse(format!(
                "{what} '{shown}' is {kind}: refused, only regular files are followed"
            )));
        }
        let real_path = std::fs::read_link(format!("/proc/self/fd/{}", fd_of(&file)))
            .map_err(|e| Error::io(format!("locate {what} of {image}"), e))?;
        if !self.dirs.iter().any(|d| real_path.starts_with(d)) {
            let allowed = self
                .dirs
                .iter()
                .map(|d| escape(&d.display().to_string()))
                .collect::<Vec<_>>()
                .join(", ");
            return Err(refuse(format!(
                "{what} '{shown}' resolves to {}, outside the allowed directories ({allowed}): refused (add one with --backing-dir DIR if you trust it)",
                escape(&real_path.display().to_string())
            )));
        }
        Ok(NamedFile {
            file,
            path,
            real_path,
        })
    }
}

fn fd_of(f: &File) -> i32 {
    use std::os::unix::io::AsRawFd;
    f.as_raw_fd()
}

/// Why `name` is not a plain file name, if it is not: qemu reads `json:{...}` as options
/// and `proto:...` (a prefix of letters before a colon, with no `/` in it) as a protocol
/// such as `nbd:`, `http:` or `rbd:`, which would reach other hosts or devices.
fn non_file_name(name: &str) -> Option<&'static str> {
    if name.starts_with("json:") {
        return Some("a json: option string");
    }
    // qemu's path_has_protocol: a ':' before any '/' or '\'.
    let prefix_end = name.find([':', '/', '\\']);
    if prefix_end.is_some_and(|i| name.as_bytes()[i] == b':') {
        return Some("a protocol name");
    }
    if name.is_empty() {
        return Some("an empty name");
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_and_json_names_are_not_files() {
        for n in [
            "json:{\"file.filename\":\"/etc/passwd\"}",
            "nbd:localhost:10809",
            "http://x/y",
            "rbd:pool/img",
            "file:/etc/passwd",
            "",
        ] {
            assert!(non_file_name(n).is_some(), "{n}");
        }
        for n in [
            "base.qcow2",
            "/srv/images/base.qcow2",
            "../x",
            "./a:b",
            "dir/a:b",
        ] {
            assert!(non_file_name(n).is_none(), "{n}");
        }
    }

    #[test]
    fn refuses_by_default_and_outside_the_allowed_dirs() {
        let d = tempfile::tempdir().unwrap();
        let inside = d.path().join("in");
        std::fs::create_dir(&inside).unwrap();
        std::fs::write(inside.join("base.raw"), b"x").unwrap();
        std::fs::write(d.path().join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink("../secret", inside.join("link")).unwrap();
        let img = inside.join("top.qcow2");
        std::fs::write(&img, b"").unwrap();

        let e = FilePolicy::refuse()
            .open_named("top", &inside, "base.raw", "backing file")
            .unwrap_err()
            .to_string();
        assert!(e.contains(ALLOW_FLAG), "{e}");

        let p = FilePolicy::allow(&[]).unwrap().with_image_dir(&img);
        assert!(p
            .open_named("top", &inside, "base.raw", "backing file")
            .is_ok());
        for (name, needle) in [
            ("../secret", "outside the allowed"),
            ("link", "outside the allowed"),
            ("/dev/null", "character device"),
            ("/etc/passwd", "outside the allowed"),
            (".", "directory"),
            ("nope", "not found"),
        ] {
            let e = p
                .open_named("top", &inside, name, "backing file")
                .unwrap_err()
                .to_string();
            assert!(e.contains(needle), "{name}: {e}");
        }
        let wider = FilePolicy::allow(&[d.path().to_path_buf()])
            .unwrap()
            .with_image_dir(&img);
        assert!(wider
            .open_named("top", &inside, "link", "backing file")
            .is_ok());
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo reads a NUL-terminated path that outlives the call.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let p = FilePolicy::allow(&[d.path().to_path_buf()]).unwrap();
        let e = p
            .open_named("top", d.path(), "fifo", "backing file")
            .unwrap_err()
            .to_string();
        assert!(e.contains("FIFO"), "{e}");
    }
}
