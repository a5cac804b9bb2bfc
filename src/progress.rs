//! Progress of the long commands (bench, eval, phantom, build-engines): an `indicatif` bar the
//! library only counts on. Whether anything is drawn is the caller's choice, made once: `main`
//! asks for a visible bar only when stderr is a terminal, so logs, pipes, systemd and CI get no
//! progress output at all. Touches stderr only through a visible bar.

use indicatif::{ProgressBar, ProgressStyle};
use std::time::Duration;

/// A bar of `len` steps named `what` (`phantom`, `eval series-003`, ...), drawn on stderr when
/// `visible`, else a hidden bar that counts and prints nothing.
pub fn bar(visible: bool, len: u64, what: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} {msg} ({elapsed}, {eta} left)")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_prefix(what.to_string())
}

/// A spinner with the time so far, for steps of unknown length (a TensorRT plan build).
pub fn spinner(visible: bool, what: &str) -> ProgressBar {
    if !visible {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let s = ProgressBar::new_spinner().with_style(style).with_message(what.to_string());
    s.enable_steady_tick(Duration::from_millis(200));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hidden_bars_count_without_drawing() {
        let b = bar(false, 10, "test");
        b.inc(3);
        assert_eq!(b.position(), 3);
        assert!(b.is_hidden());
        let s = spinner(false, "test");
        assert!(s.is_hidden());
    }
}
