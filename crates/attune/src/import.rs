//! `attune import items|events FILE`: bulk loading of product feeds and event files into a tenant.
//!
//! - Items come from product feeds that use Google Merchant Center attribute names (`id`, `title`,
//!   `price` = `"12.50 GBP"`, `product_type`, …), as CSV, TSV or JSON lines; see [`items`] for the mapping.
//! - Events come in the API's wire format, as JSON lines (one `EventInput` object per line) or CSV (one
//!   column per scalar field, one order line per row); see [`events`].
//!
//! The format is chosen by the file's extension (`.csv`, `.tsv`/`.txt`, `.jsonl`/`.ndjson`, each optionally
//! followed by `.gz`) unless given explicitly; gzip compression is recognised by its magic bytes.
//! Every row goes through the core crate's `parse` functions, so an import accepts exactly what the API
//! accepts. Rows are written in chunks of [`CHUNK_ROWS`], one store transaction each. A bad row is
//! rejected with its 1-based physical line number (the CSV header is line 1) and never stops the rest; a
//! row is applied whole or not at all. A file that cannot be read, or is not in the format at all (no `id`
//! column, not JSON), is an error.

pub mod events;
pub mod items;
mod progress;
mod source;
mod summary;

pub use progress::{ImportProgress, NoProgress, ProgressBarReporter};
pub use source::Format;
pub use summary::{ImportKind, ImportSummary, Rejection};

use anyhow::Context;
use attune_core::{Event, EventTimeWindow, Item, TenantId, Timestamp};
use attune_store::Store;
use source::{CsvRows, JsonLines, OpenedFile, RowRead};
use std::path::Path;

/// Rows per store write (one transaction each).
pub const CHUNK_ROWS: usize = 2_000;

/// Import a Merchant Center product feed into `tenant`: items are inserted or replaced by id.
pub fn import_items(
    store: &dyn Store,
    tenant: &TenantId,
    path: &Path,
    format: Option<Format>,
    progress: &dyn ImportProgress,
) -> anyhow::Result<ImportSummary> {
    let file = source::open(path, format)?;
    tracing::info!(path = %path.display(), format = file.format.name(), %tenant, "importing items");
    progress.set_total(file.total_bytes);
    let now = Timestamp::now();
    let mut summary = ImportSummary::new(ImportKind::Items, path, file.format);
    let mut writer = ChunkWriter::new(|chunk: &[Item], summary: &mut ImportSummary| {
        let counts = store.upsert_items(tenant, chunk)?;
        summary.accepted += chunk.len();
        summary.replaced += counts.updated as usize;
        Ok(())
    });
    let mut tracker = ProgressTracker::new(&file, progress);
    match file.format {
        Format::Csv | Format::Tsv => {
            let mut rows = CsvRows::new(file.reader, file.format)?;
            let columns = items::ItemColumns::from_headers(rows.headers())?;
            summary.unmapped_columns = columns.unmapped_columns();
            while let Some(read) = rows.next_row()? {
                summary.rows_read += 1;
                match read {
                    RowRead::Row { line, fields } => {
                        match columns.item_input(&fields).and_then(|input| parse_item(input, now)) {
                            Ok(item) => writer.push(item, line, &mut summary)?,
                            Err(reason) => summary.reject(line, reason),
                        }
                    }
                    RowRead::Bad { line, reason } => summary.reject(line, reason),
                }
                tracker.update();
            }
        }
        Format::Jsonl => {
            let mut lines = JsonLines::new(file.reader);
            let mut unmapped = std::collections::BTreeSet::new();
            while let Some((line, text)) = lines.next_line()? {
                summary.rows_read += 1;
                match items::item_input_from_json(&text, &mut unmapped).and_then(|input| parse_item(input, now)) {
                    Ok(item) => writer.push(item, line, &mut summary)?,
                    Err(reason) => summary.reject(line, reason),
                }
                tracker.update();
            }
            summary.unmapped_columns = unmapped.into_iter().collect();
        }
    }
    writer.finish(&mut summary)?;
    tracker.update();
    log_summary(&summary);
    Ok(summary)
}

/// Import events in the API wire format into `tenant`, accepting the default event time window. Event ids
/// already stored are skipped and counted as duplicates, so importing the same file again stores nothing
/// twice (for events that carry an id).
pub fn import_events(
    store: &dyn Store,
    tenant: &TenantId,
    path: &Path,
    format: Option<Format>,
    progress: &dyn ImportProgress,
) -> anyhow::Result<ImportSummary> {
    import_events_within(store, tenant, path, format, &EventTimeWindow::default(), progress)
}

/// [`import_events`] with an explicit event time window: events outside it are rejected rows.
pub fn import_events_within(
    store: &dyn Store,
    tenant: &TenantId,
    path: &Path,
    format: Option<Format>,
    window: &EventTimeWindow,
    progress: &dyn ImportProgress,
) -> anyhow::Result<ImportSummary> {
    let file = source::open(path, format)?;
    tracing::info!(path = %path.display(), format = file.format.name(), %tenant, "importing events");
    progress.set_total(file.total_bytes);
    let now = Timestamp::now();
    let mut summary = ImportSummary::new(ImportKind::Events, path, file.format);
    let mut writer = ChunkWriter::new(|chunk: &[Event], summary: &mut ImportSummary| {
        let outcome = store.append_events(tenant, chunk)?;
        summary.accepted += outcome.accepted as usize;
        summary.duplicates += outcome.duplicates as usize;
        Ok(())
    });
    let mut tracker = ProgressTracker::new(&file, progress);
    let mut emit = |parsed: events::ParsedEvent, summary: &mut ImportSummary| -> anyhow::Result<()> {
        let checked = parsed.result.and_then(|event| match window.check(event.timestamp, now) {
            Ok(()) => Ok(event),
            Err(error) => Err(error.to_string()),
        });
        match checked {
            Ok(event) => {
                if !parsed.had_event_id {
                    summary.generated_event_ids += 1;
                }
                writer.push(event, parsed.line, summary)
            }
            Err(reason) => {
                summary.reject(parsed.line, reason);
                Ok(())
            }
        }
    };
    match file.format {
        Format::Csv | Format::Tsv => {
            let mut rows = CsvRows::new(file.reader, file.format)?;
            let mut assembler = events::CsvEventAssembler::new(rows.headers(), now)?;
            while let Some(read) = rows.next_row()? {
                summary.rows_read += 1;
                let completed = match read {
                    RowRead::Row { line, fields } => assembler.push_row(line, &fields),
                    RowRead::Bad { line, reason } => assembler.push_unreadable(line, reason),
                };
                for parsed in completed {
                    emit(parsed, &mut summary)?;
                }
                tracker.update();
            }
            for parsed in assembler.finish() {
                emit(parsed, &mut summary)?;
            }
        }
        Format::Jsonl => {
            let mut lines = JsonLines::new(file.reader);
            while let Some((line, text)) = lines.next_line()? {
                summary.rows_read += 1;
                emit(events::event_from_json(line, &text, now), &mut summary)?;
                tracker.update();
            }
        }
    }
    writer.finish(&mut summary)?;
    tracker.update();
    log_summary(&summary);
    Ok(summary)
}

fn parse_item(input: attune_core::ItemInput, now: Timestamp) -> Result<Item, String> {
    Item::parse(input, now).map_err(|e| e.to_string())
}

fn log_summary(summary: &ImportSummary) {
    tracing::info!(
        kind = summary.kind.noun(),
        rows_read = summary.rows_read,
        accepted = summary.accepted,
        duplicates = summary.duplicates,
        rejected = summary.rejected_count,
        "import finished"
    );
}

/// Collects parsed values and hands them to the store [`CHUNK_ROWS`] at a time.
struct ChunkWriter<T, F> {
    pending: Vec<T>,
    /// The last file line of the pending values, for the error message if the store fails.
    last_line: usize,
    /// The last line whose values are stored.
    stored_through_line: usize,
    write: F,
}

impl<T, F> ChunkWriter<T, F>
where
    F: FnMut(&[T], &mut ImportSummary) -> anyhow::Result<()>,
{
    fn new(write: F) -> Self {
        Self { pending: Vec::with_capacity(CHUNK_ROWS), last_line: 0, stored_through_line: 0, write }
    }

    fn push(&mut self, value: T, line: usize, summary: &mut ImportSummary) -> anyhow::Result<()> {
        self.pending.push(value);
        self.last_line = line;
        if self.pending.len() >= CHUNK_ROWS {
            self.flush(summary)?;
        }
        Ok(())
    }

    fn flush(&mut self, summary: &mut ImportSummary) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        (self.write)(&self.pending, summary).with_context(|| match self.stored_through_line {
            0 => "writing to the store failed; nothing of this file was stored".to_string(),
            line => format!("writing to the store failed; the rows up to line {line} are stored"),
        })?;
        tracing::debug!(rows = self.pending.len(), through_line = self.last_line, "import chunk stored");
        self.stored_through_line = self.last_line;
        self.pending.clear();
        Ok(())
    }

    fn finish(mut self, summary: &mut ImportSummary) -> anyhow::Result<()> {
        self.flush(summary)
    }
}

/// Reports the bytes consumed from the file to an [`ImportProgress`] as reading goes on.
struct ProgressTracker<'a> {
    bytes_read: source::ByteCounter,
    reported: u64,
    progress: &'a dyn ImportProgress,
}

impl<'a> ProgressTracker<'a> {
    fn new(file: &OpenedFile, progress: &'a dyn ImportProgress) -> Self {
        Self { bytes_read: file.bytes_read.clone(), reported: 0, progress }
    }

    fn update(&mut self) {
        let read = self.bytes_read.get();
        if read > self.reported {
            self.progress.advance(read - self.reported);
            self.reported = read;
        }
    }
}
