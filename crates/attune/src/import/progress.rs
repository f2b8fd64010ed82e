//! Progress of an import, measured in bytes of the file consumed (compressed bytes for gzip files).

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Receives an import's progress; the CLI shows it as a progress bar.
pub trait ImportProgress {
    /// The size of the file in bytes, called once before reading.
    fn set_total(&self, bytes: u64);
    /// `bytes` more of the file were consumed.
    fn advance(&self, bytes: u64);
}

/// Shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoProgress;

impl ImportProgress for NoProgress {
    fn set_total(&self, _bytes: u64) {}
    fn advance(&self, _bytes: u64) {}
}

/// An indicatif progress bar on standard error (drawn only when it is a terminal).
#[derive(Debug, Clone)]
pub struct ProgressBarReporter {
    bar: ProgressBar,
}

impl ProgressBarReporter {
    pub fn new() -> Self {
        let bar = ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr());
        let style = ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {wide_bar} {bytes}/{total_bytes} ({bytes_per_sec}, {eta} left)",
        )
        .expect("valid progress template");
        bar.set_style(style);
        Self { bar }
    }

    /// Remove the bar, so the summary printed next stands alone.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl Default for ProgressBarReporter {
    fn default() -> Self {
        Self::new()
    }
}

impl ImportProgress for ProgressBarReporter {
    fn set_total(&self, bytes: u64) {
        self.bar.set_length(bytes);
    }

    fn advance(&self, bytes: u64) {
        self.bar.inc(bytes);
    }
}
