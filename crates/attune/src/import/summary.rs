//! What an import did: rows read, stored, skipped as duplicates and rejected (with line and reason).

use crate::import::source::Format;
use std::fmt::Write;
use std::path::Path;

/// Rejections kept with their reasons; beyond this only the count goes on.
pub const MAX_KEPT_REJECTIONS: usize = 10_000;
/// Rejections listed by [`ImportSummary::render`].
pub const MAX_RENDERED_REJECTIONS: usize = 50;

/// What was imported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportKind {
    Items,
    Events,
}

impl ImportKind {
    /// The plural noun of the imported things.
    pub fn noun(&self) -> &'static str {
        match self {
            Self::Items => "items",
            Self::Events => "events",
        }
    }
}

/// A row that was not imported.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 1-based physical line number in the file (the CSV header is line 1).
    pub line: usize,
    pub reason: String,
}

/// The outcome of one import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportSummary {
    pub kind: ImportKind,
    /// The file, as given.
    pub source: String,
    pub format: Format,
    /// Data rows read (CSV rows after the header, or non-blank JSON lines).
    pub rows_read: usize,
    /// Items written, or events newly stored.
    pub accepted: usize,
    /// Of the accepted items, how many replaced an item already stored.
    pub replaced: usize,
    /// Events whose id was already stored (a retried import): skipped, not stored twice.
    pub duplicates: usize,
    /// The first [`MAX_KEPT_REJECTIONS`] rejections, in file order.
    pub rejected: Vec<Rejection>,
    /// All rejections, including those beyond [`MAX_KEPT_REJECTIONS`].
    pub rejected_count: usize,
    /// Columns (or JSON keys) that are not attributes Attune maps; their values were kept as item attributes.
    pub unmapped_columns: Vec<String>,
    /// Events stored without an `event_id` in the file; each got a fresh one, so importing the file again
    /// would store them again.
    pub generated_event_ids: usize,
}

impl ImportSummary {
    pub fn new(kind: ImportKind, path: &Path, format: Format) -> Self {
        Self {
            kind,
            source: path.display().to_string(),
            format,
            rows_read: 0,
            accepted: 0,
            replaced: 0,
            duplicates: 0,
            rejected: Vec::new(),
            rejected_count: 0,
            unmapped_columns: Vec::new(),
            generated_event_ids: 0,
        }
    }

    pub(crate) fn reject(&mut self, line: usize, reason: String) {
        tracing::debug!(line, %reason, "import row rejected");
        self.rejected_count += 1;
        if self.rejected.len() < MAX_KEPT_REJECTIONS {
            self.rejected.push(Rejection { line, reason });
        }
    }

    /// A human summary: the counts, unmapped columns, and the first [`MAX_RENDERED_REJECTIONS`] rejections.
    pub fn render(&self) -> String {
        let noun = self.kind.noun();
        let mut text = format!(
            "imported {noun} from {} ({}): {} read, {} {noun} stored",
            self.source,
            self.format.name(),
            count(self.rows_read, "row", "rows"),
            self.accepted
        );
        if self.kind == ImportKind::Items && self.replaced > 0 {
            let _ = write!(text, " ({} replaced existing items)", self.replaced);
        }
        if self.kind == ImportKind::Events {
            let _ = write!(text, ", {} already stored", count(self.duplicates, "duplicate", "duplicates"));
        }
        let _ = write!(text, ", {} rejected", self.rejected_count);
        if !self.unmapped_columns.is_empty() {
            let _ = write!(text, "\nunmapped columns kept as attributes: {}", self.unmapped_columns.join(", "));
        }
        if self.generated_event_ids > 0 {
            let _ = write!(
                text,
                "\n{} events had no event_id and got a generated one; importing this file again would store them again",
                self.generated_event_ids
            );
        }
        if self.rejected_count > 0 {
            let shown = self.rejected.len().min(MAX_RENDERED_REJECTIONS);
            if shown < self.rejected_count {
                let _ = write!(text, "\nrejected (first {shown} of {}):", self.rejected_count);
            } else {
                let _ = write!(text, "\nrejected:");
            }
            for rejection in &self.rejected[..shown] {
                let _ = write!(text, "\n  line {}: {}", rejection.line, rejection.reason);
            }
        }
        text
    }
}

/// `1 row`, `2 rows`.
fn count(number: usize, singular: &str, plural: &str) -> String {
    format!("{number} {}", if number == 1 { singular } else { plural })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counts_columns_and_the_first_rejections() {
        let mut summary = ImportSummary::new(ImportKind::Items, Path::new("feed.csv"), Format::Csv);
        summary.rows_read = 60;
        summary.accepted = 5;
        summary.unmapped_columns = vec!["shipping".into(), "promo".into()];
        for line in 2..57 {
            summary.reject(line, format!("bad {line}"));
        }
        let text = summary.render();
        assert!(text.starts_with("imported items from feed.csv (csv): 60 rows read, 5 items stored, 55 rejected"));
        assert!(text.contains("unmapped columns kept as attributes: shipping, promo"));
        assert!(text.contains("rejected (first 50 of 55):\n  line 2: bad 2\n"));
        assert!(text.contains("line 51: bad 51") && !text.contains("line 52:"));

        let mut events = ImportSummary::new(ImportKind::Events, Path::new("e.jsonl"), Format::Jsonl);
        events.rows_read = 2;
        events.duplicates = 1;
        assert_eq!(
            events.render(),
            "imported events from e.jsonl (jsonl): 2 rows read, 0 events stored, 1 duplicate already stored, 0 rejected"
        );
    }
}
