//! Free-function spellings of the pool's image operations, kept only so `src/import.rs` (being
//! rewritten with the copy engine) builds unchanged. New code calls the [`IoCtx`] methods; remove
//! this module once import.rs does too.
use super::{CreateOptions, IoCtx};
use crate::error::Result;

/// [`IoCtx::create_image`].
pub fn create_image(io: &IoCtx, name: &str, size: u64, opts: &CreateOptions) -> Result<()> {
    io.create_image(name, size, opts)
}

/// [`IoCtx::image_exists`].
pub fn image_exists(io: &IoCtx, name: &str) -> Result<bool> {
    io.image_exists(name)
}

/// [`IoCtx::list_images`].
pub fn list_images(io: &IoCtx) -> Result<Vec<String>> {
    io.list_images()
}

/// [`IoCtx::remove_image`].
pub fn remove_image(io: &IoCtx, name: &str) -> Result<()> {
    io.remove_image(name)
}

/// [`IoCtx::rename_image`].
pub fn rename_image(io: &IoCtx, from: &str, to: &str) -> Result<()> {
    io.rename_image(from, to)
}
