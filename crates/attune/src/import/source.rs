//! Opening an import file: choosing the format, undoing gzip, counting the bytes consumed for progress,
//! and reading CSV/TSV rows or JSON lines together with their 1-based physical line numbers.

use anyhow::{Context, anyhow, bail};
use flate2::bufread::MultiGzDecoder;
use std::cell::Cell;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::rc::Rc;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";
/// The byte order mark as a character, as it appears at the start of a decoded header.
pub(crate) const UTF8_BOM_CHAR: char = '\u{feff}';

/// The layout of an import file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Comma-separated values with a header row; fields may be quoted with `"`.
    Csv,
    /// Tab-separated values with a header row, as Merchant Center exports them: no quoting, so a `"`
    /// is an ordinary character.
    Tsv,
    /// One JSON object per line; blank lines are skipped.
    Jsonl,
}

impl Format {
    /// The format named by a path's extension, looking through a trailing `.gz`: `.csv`, `.tsv` or `.txt`,
    /// `.jsonl` or `.ndjson`.
    pub fn from_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?.to_ascii_lowercase();
        let name = name.strip_suffix(".gz").unwrap_or(&name);
        match name.rsplit_once('.')?.1 {
            "csv" => Some(Self::Csv),
            "tsv" | "txt" => Some(Self::Tsv),
            "jsonl" | "ndjson" => Some(Self::Jsonl),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Self::Csv => "csv",
            Self::Tsv => "tsv",
            Self::Jsonl => "jsonl",
        }
    }
}

/// Bytes read from the file so far (compressed bytes for a gzip file), shared between the reader and
/// the progress reporting.
#[derive(Debug, Clone, Default)]
pub(crate) struct ByteCounter(Rc<Cell<u64>>);

impl ByteCounter {
    pub(crate) fn get(&self) -> u64 {
        self.0.get()
    }

    fn add(&self, bytes: usize) {
        self.0.set(self.0.get() + bytes as u64);
    }
}

struct CountingReader<R> {
    inner: R,
    counter: ByteCounter,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.counter.add(read);
        Ok(read)
    }
}

/// An import file opened for reading.
pub(crate) struct OpenedFile {
    /// The decompressed content.
    pub reader: Box<dyn BufRead>,
    pub format: Format,
    /// Size of the file on disk.
    pub total_bytes: u64,
    pub bytes_read: ByteCounter,
}

pub(crate) fn open(path: &Path, format: Option<Format>) -> anyhow::Result<OpenedFile> {
    let format = match format.or_else(|| Format::from_path(path)) {
        Some(format) => format,
        None => bail!(
            "cannot tell the format of {} from its extension (.csv, .tsv, .txt, .jsonl, .ndjson, optionally .gz); \
             give it with --format",
            path.display()
        ),
    };
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let total_bytes = file.metadata().with_context(|| format!("cannot read {}", path.display()))?.len();
    let bytes_read = ByteCounter::default();
    let mut buffered =
        BufReader::with_capacity(256 * 1024, CountingReader { inner: file, counter: bytes_read.clone() });
    let is_gzip =
        buffered.fill_buf().with_context(|| format!("cannot read {}", path.display()))?.starts_with(&GZIP_MAGIC);
    let reader: Box<dyn BufRead> = if is_gzip {
        Box::new(BufReader::with_capacity(256 * 1024, MultiGzDecoder::new(buffered)))
    } else {
        Box::new(buffered)
    };
    Ok(OpenedFile { reader, format, total_bytes, bytes_read })
}

/// One data row of a CSV/TSV file, or why it could not be read.
pub(crate) enum RowRead {
    Row { line: usize, fields: Vec<String> },
    Bad { line: usize, reason: String },
}

/// The rows of a CSV or TSV file after its header.
///
/// The parser (csv-core) is fed one physical line at a time, so every record's first line is known
/// exactly, whatever the line endings (LF, CRLF), blank lines or newlines inside quoted fields.
pub(crate) struct CsvRows {
    input: Box<dyn BufRead>,
    parser: csv_core::Reader,
    headers: Vec<String>,
    /// The current physical line and how much of it the parser has consumed.
    line: Vec<u8>,
    line_consumed: usize,
    line_number: usize,
    at_end_of_input: bool,
    /// The record being parsed: field bytes, field end offsets, and the line it started on.
    output: Vec<u8>,
    output_len: usize,
    ends: Vec<usize>,
    ends_len: usize,
    record_line: Option<usize>,
}

impl CsvRows {
    pub(crate) fn new(input: Box<dyn BufRead>, format: Format) -> anyhow::Result<Self> {
        let mut builder = csv_core::ReaderBuilder::new();
        if format == Format::Tsv {
            builder.delimiter(b'\t').quoting(false);
        }
        let mut rows = Self {
            input,
            parser: builder.build(),
            headers: Vec::new(),
            line: Vec::new(),
            line_consumed: 0,
            line_number: 0,
            at_end_of_input: false,
            output: vec![0; 4 * 1024],
            output_len: 0,
            ends: vec![0; 64],
            ends_len: 0,
            record_line: None,
        };
        let Some(_) = rows.read_record()? else {
            bail!("the file is empty: there is no header row");
        };
        let headers = rows
            .fields()
            .map(|field| String::from_utf8(field.to_vec()).map_err(|_| anyhow!("the header row is not valid UTF-8")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if headers.iter().all(|h| h.trim().is_empty()) {
            bail!("the header row is empty");
        }
        rows.headers = headers;
        Ok(rows)
    }

    pub(crate) fn headers(&self) -> &[String] {
        &self.headers
    }

    /// The next data row; `None` at the end of the file. Only I/O failures are errors.
    pub(crate) fn next_row(&mut self) -> anyhow::Result<Option<RowRead>> {
        let Some(line) = self.read_record()? else {
            return Ok(None);
        };
        if self.ends_len != self.headers.len() {
            let reason = format!("the row has {} fields but the header has {}", self.ends_len, self.headers.len());
            return Ok(Some(RowRead::Bad { line, reason }));
        }
        let mut fields = Vec::with_capacity(self.ends_len);
        for (index, field) in self.fields().enumerate() {
            match std::str::from_utf8(field) {
                Ok(text) => fields.push(text.to_string()),
                Err(_) => {
                    let reason = format!("column `{}` is not valid UTF-8", self.headers[index]);
                    return Ok(Some(RowRead::Bad { line, reason }));
                }
            }
        }
        Ok(Some(RowRead::Row { line, fields }))
    }

    /// The fields of the record last read.
    fn fields(&self) -> impl Iterator<Item = &[u8]> {
        let ends = &self.ends[..self.ends_len];
        ends.iter().enumerate().map(move |(index, &end)| {
            let start = if index == 0 { 0 } else { ends[index - 1] };
            &self.output[start..end]
        })
    }

    /// Parse the next record; returns the line it starts on, `None` at the end.
    fn read_record(&mut self) -> anyhow::Result<Option<usize>> {
        use csv_core::ReadRecordResult;
        self.output_len = 0;
        self.ends_len = 0;
        loop {
            if self.line_consumed >= self.line.len() && !self.at_end_of_input {
                self.line.clear();
                self.line_consumed = 0;
                if self.input.read_until(b'\n', &mut self.line).context("cannot read the file")? == 0 {
                    self.at_end_of_input = true;
                } else {
                    self.line_number += 1;
                    if self.line_number == 1 && self.line.starts_with(UTF8_BOM) {
                        self.line_consumed = UTF8_BOM.len();
                    }
                }
            }
            let input = &self.line[self.line_consumed..];
            // Blank lines between records are skipped by the parser; a record starts at its first content.
            if self.record_line.is_none() && input.iter().any(|&b| b != b'\n' && b != b'\r') {
                self.record_line = Some(self.line_number);
            }
            let (result, consumed, written, ended) =
                self.parser.read_record(input, &mut self.output[self.output_len..], &mut self.ends[self.ends_len..]);
            self.line_consumed += consumed;
            self.output_len += written;
            self.ends_len += ended;
            match result {
                ReadRecordResult::InputEmpty => {}
                ReadRecordResult::OutputFull => self.output.resize(self.output.len() * 2, 0),
                ReadRecordResult::OutputEndsFull => self.ends.resize(self.ends.len() * 2, 0),
                ReadRecordResult::Record => return Ok(Some(self.record_line.take().unwrap_or(self.line_number))),
                ReadRecordResult::End => return Ok(None),
            }
        }
    }
}

/// The non-blank lines of a JSON lines file.
pub(crate) struct JsonLines {
    reader: Box<dyn BufRead>,
    line_number: usize,
    buffer: Vec<u8>,
    seen_content: bool,
}

impl JsonLines {
    pub(crate) fn new(reader: Box<dyn BufRead>) -> Self {
        Self { reader, line_number: 0, buffer: Vec::new(), seen_content: false }
    }

    /// The next non-blank line and its line number, without the line ending; `None` at the end.
    /// The first non-blank line must start a JSON object: otherwise the file is not JSON lines at all
    /// (a CSV file given as JSONL, say) and that is an error rather than a rejection per line.
    pub(crate) fn next_line(&mut self) -> anyhow::Result<Option<(usize, Vec<u8>)>> {
        loop {
            self.buffer.clear();
            let read = self.reader.read_until(b'\n', &mut self.buffer).context("cannot read the file")?;
            if read == 0 {
                return Ok(None);
            }
            self.line_number += 1;
            let mut line = self.buffer.as_slice();
            if self.line_number == 1 {
                line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
            }
            let line = line.trim_ascii();
            if line.is_empty() {
                continue;
            }
            if !self.seen_content {
                self.seen_content = true;
                if !line.starts_with(b"{") {
                    bail!(
                        "line {} does not start a JSON object; is this file really JSON lines (one object per line)?",
                        self.line_number
                    );
                }
            }
            return Ok(Some((self.line_number, line.to_vec())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn boxed(text: &str) -> Box<dyn BufRead> {
        Box::new(Cursor::new(text.as_bytes().to_vec()))
    }

    #[test]
    fn formats_come_from_extensions() {
        assert_eq!(Format::from_path(Path::new("feed.csv")), Some(Format::Csv));
        assert_eq!(Format::from_path(Path::new("feed.TSV.gz")), Some(Format::Tsv));
        assert_eq!(Format::from_path(Path::new("dir.x/feed.txt")), Some(Format::Tsv));
        assert_eq!(Format::from_path(Path::new("events.ndjson")), Some(Format::Jsonl));
        assert_eq!(Format::from_path(Path::new("events.jsonl.gz")), Some(Format::Jsonl));
        assert_eq!(Format::from_path(Path::new("events.json")), None);
        assert_eq!(Format::from_path(Path::new("feed")), None);
    }

    #[test]
    fn csv_rows_carry_physical_line_numbers() {
        let text = "\u{feff}id,title\r\n1,\"two\r\nlines\"\r\n\r\n2,x,extra\n3,ok\n\n4,\"last\"";
        let mut rows = CsvRows::new(boxed(text), Format::Csv).unwrap();
        assert_eq!(rows.headers(), ["id", "title"]);
        let mut read = Vec::new();
        while let Some(row) = rows.next_row().unwrap() {
            read.push(match row {
                RowRead::Row { line, fields } => format!("{line}: {}", fields.join("|")),
                RowRead::Bad { line, reason } => format!("{line}! {reason}"),
            });
        }
        assert_eq!(read, ["2: 1|two\r\nlines", "5! the row has 3 fields but the header has 2", "6: 3|ok", "8: 4|last"]);
    }

    #[test]
    fn tsv_does_not_treat_quotes_specially() {
        let mut rows = CsvRows::new(boxed("id\ttitle\n1\t12\" pizza \"tray\n"), Format::Tsv).unwrap();
        let Some(RowRead::Row { fields, .. }) = rows.next_row().unwrap() else { panic!("row") };
        assert_eq!(fields, ["1", "12\" pizza \"tray"]);
    }

    #[test]
    fn json_lines_skip_blanks_and_refuse_non_json() {
        let mut lines = JsonLines::new(boxed("\u{feff}{\"a\":1}\r\n\n  \n{\"b\":2}"));
        assert_eq!(lines.next_line().unwrap(), Some((1, b"{\"a\":1}".to_vec())));
        assert_eq!(lines.next_line().unwrap(), Some((4, b"{\"b\":2}".to_vec())));
        assert_eq!(lines.next_line().unwrap(), None);
        let mut csv = JsonLines::new(boxed("id,title\n1,x\n"));
        assert!(csv.next_line().unwrap_err().to_string().contains("JSON lines"));
    }

    #[test]
    fn gzip_is_recognised_by_content_and_bytes_are_counted() {
        use flate2::{Compression, write::GzEncoder};
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("feed.data");
        let mut encoder = GzEncoder::new(File::create(&path).unwrap(), Compression::default());
        encoder.write_all(b"id,title\n1,one\n").unwrap();
        encoder.finish().unwrap();
        assert!(open(&path, None).is_err(), "no format from the extension");
        let mut file = open(&path, Some(Format::Csv)).unwrap();
        let mut text = String::new();
        file.reader.read_to_string(&mut text).unwrap();
        assert_eq!(text, "id,title\n1,one\n");
        assert_eq!(file.bytes_read.get(), file.total_bytes);
    }
}
