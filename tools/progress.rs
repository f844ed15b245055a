//! Progress bars on stderr, drawn only when stderr is a terminal and `--no-progress` is not set.
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

/// A byte-progress bar, hidden when not wanted.
pub fn bytes_bar(total: u64, message: &str, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} {binary_bytes_per_sec} eta {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}

/// A count progress bar (e.g. clones made), hidden when not wanted.
#[cfg_attr(not(feature = "rbd"), allow(dead_code))]
pub fn count_bar(total: u64, message: &str, enabled: bool) -> ProgressBar {
    if !enabled || !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message(message.to_string());
    bar
}
