//! Event files in the API wire format.
//!
//! - JSON lines: each line is one `EventInput` object, exactly as `POST /v1/events` takes it.
//! - CSV/TSV: the header names `EventInput`'s scalar fields: `type`, `event_id`, `user_id`, `anonymous_id`,
//!   `session_id`, `timestamp` (RFC 3339 or integer milliseconds), `channel`, `store_id`, `item_id`,
//!   `quantity`, `dwell_ms`, `order_id`, `currency`, `query`, `rating`, `recommendation_id`, `position`;
//!   the lists `result_ids`, `item_ids` and `positions` are `|`-separated; `context.KEY` columns fill the
//!   context. Only `type` is required; unknown columns make the file unusable (a typo would otherwise
//!   silently drop data).
//!
//!   A `purchase` or `return` row describes ONE order line with its `item_id`, `quantity` and `unit_price`.
//!   Consecutive rows with the same `type` and `event_id` are one event with several lines: later rows may
//!   leave the event's own columns empty or repeat them, but may not contradict the first row. Such an
//!   event is accepted or rejected as a whole and reported at its first row's line. An unreadable row
//!   right after such rows also rejects them, since it may have been one of their lines.

use crate::import::items::{json_error_text, normalize_column_name};
use anyhow::bail;
use attune_core::input::{AmountInput, ScalarValue, TimeInput};
use attune_core::{Event, EventInput, OrderLineInput, Timestamp};

/// One event read from a file (possibly from several CSV rows), or why it was rejected.
#[derive(Debug)]
pub struct ParsedEvent {
    /// The file line of the event (of its first row in CSV).
    pub line: usize,
    /// Whether the file gave an `event_id`; without one the event gets a fresh id, so importing the same
    /// file again would store it again.
    pub had_event_id: bool,
    pub result: Result<Event, String>,
}

/// One JSON line as an event.
pub fn event_from_json(line: usize, text: &[u8], now: Timestamp) -> ParsedEvent {
    match serde_json::from_slice::<EventInput>(text) {
        Ok(input) => ParsedEvent { line, had_event_id: input.event_id.is_some(), result: parse_event(input, now) },
        Err(error) => {
            ParsedEvent { line, had_event_id: true, result: Err(format!("invalid event: {}", json_error_text(&error))) }
        }
    }
}

fn parse_event(input: EventInput, now: Timestamp) -> Result<Event, String> {
    Event::parse(input, now).map_err(|e| e.to_string())
}

/// What a CSV column fills.
#[derive(Debug, Clone, PartialEq, Eq)]
enum EventColumn {
    Type,
    EventId,
    UserId,
    AnonymousId,
    SessionId,
    Timestamp,
    Channel,
    StoreId,
    ItemId,
    Quantity,
    DwellMs,
    OrderId,
    Currency,
    UnitPrice,
    Query,
    ResultIds,
    RecommendationId,
    ItemIds,
    Positions,
    Position,
    Rating,
    Context(String),
}

const KNOWN_COLUMNS: &[(&str, EventColumn)] = &[
    ("type", EventColumn::Type),
    ("event_id", EventColumn::EventId),
    ("user_id", EventColumn::UserId),
    ("anonymous_id", EventColumn::AnonymousId),
    ("session_id", EventColumn::SessionId),
    ("timestamp", EventColumn::Timestamp),
    ("channel", EventColumn::Channel),
    ("store_id", EventColumn::StoreId),
    ("item_id", EventColumn::ItemId),
    ("quantity", EventColumn::Quantity),
    ("dwell_ms", EventColumn::DwellMs),
    ("order_id", EventColumn::OrderId),
    ("currency", EventColumn::Currency),
    ("unit_price", EventColumn::UnitPrice),
    ("query", EventColumn::Query),
    ("result_ids", EventColumn::ResultIds),
    ("recommendation_id", EventColumn::RecommendationId),
    ("item_ids", EventColumn::ItemIds),
    ("positions", EventColumn::Positions),
    ("position", EventColumn::Position),
    ("rating", EventColumn::Rating),
];

const CONTEXT_PREFIX: &str = "context.";

impl EventColumn {
    fn from_name(name: &str) -> Option<Self> {
        let trimmed = name.trim_start_matches(crate::import::source::UTF8_BOM_CHAR).trim();
        if let Some(key) = trimmed.get(..CONTEXT_PREFIX.len()).filter(|p| p.eq_ignore_ascii_case(CONTEXT_PREFIX)) {
            let key = trimmed[key.len()..].trim();
            return (!key.is_empty()).then(|| Self::Context(key.to_string()));
        }
        let normalized = normalize_column_name(trimmed);
        KNOWN_COLUMNS.iter().find(|(known, _)| *known == normalized).map(|(_, column)| column.clone())
    }
}

/// A purchase or return spread over consecutive rows, waiting for its last row.
#[derive(Debug)]
struct PendingOrder {
    event_type: String,
    event_id: String,
    first_line: usize,
    last_line: usize,
    input: EventInput,
    lines: Vec<OrderLineInput>,
    /// The first problem found; the whole event is rejected for it.
    failure: Option<String>,
}

impl PendingOrder {
    fn add_row(&mut self, line: usize, row: Result<(EventInput, Option<OrderLineInput>), String>) {
        self.last_line = line;
        if self.failure.is_some() {
            return;
        }
        match row {
            Err(reason) => self.failure = Some(format!("line {line}: {reason}")),
            Ok((input, order_line)) => {
                if let Some(field) = conflicting_field(&self.input, &input) {
                    self.failure =
                        Some(format!("line {line} gives a different `{field}` than line {}", self.first_line));
                } else {
                    self.lines.extend(order_line);
                }
            }
        }
    }

    fn finish(mut self, now: Timestamp) -> ParsedEvent {
        let rows = if self.first_line == self.last_line {
            String::new()
        } else {
            format!(
                " (event `{}` on lines {}-{}; none of its rows were imported)",
                self.event_id, self.first_line, self.last_line
            )
        };
        let result = match self.failure {
            Some(reason) => Err(format!("{reason}{rows}")),
            None => {
                self.input.lines = Some(self.lines);
                parse_event(self.input, now).map_err(|reason| format!("{reason}{rows}"))
            }
        };
        ParsedEvent { line: self.first_line, had_event_id: true, result }
    }
}

/// Turns CSV rows into events, merging the rows of multi-line purchases and returns.
#[derive(Debug)]
pub struct CsvEventAssembler {
    columns: Vec<EventColumn>,
    type_index: usize,
    event_id_index: Option<usize>,
    now: Timestamp,
    pending: Option<PendingOrder>,
}

impl CsvEventAssembler {
    /// Resolve the header; unknown or repeated columns and a missing `type` column are errors.
    pub fn new(headers: &[String], now: Timestamp) -> anyhow::Result<Self> {
        let mut columns = Vec::with_capacity(headers.len());
        let mut unknown = Vec::new();
        for header in headers {
            match EventColumn::from_name(header) {
                Some(column) if columns.contains(&column) => bail!("the column `{header}` appears twice"),
                Some(column) => columns.push(column),
                None => unknown.push(header.as_str()),
            }
        }
        if !unknown.is_empty() {
            let known: Vec<&str> = KNOWN_COLUMNS.iter().map(|(name, _)| *name).collect();
            bail!(
                "unknown columns {unknown:?} in the header; event columns are {} and context.KEY (is the format, \
                 comma- or tab-separated, right?)",
                known.join(", ")
            );
        }
        let Some(type_index) = columns.iter().position(|c| *c == EventColumn::Type) else {
            bail!("the header has no `type` column");
        };
        let event_id_index = columns.iter().position(|c| *c == EventColumn::EventId);
        Ok(Self { columns, type_index, event_id_index, now, pending: None })
    }

    /// Take one row; returns the events it completed (none while a multi-row order may go on).
    pub fn push_row(&mut self, line: usize, fields: &[String]) -> Vec<ParsedEvent> {
        let mut completed = Vec::new();
        let key = self.order_key(fields);
        if let Some(pending) = &self.pending
            && key.is_none_or(|(event_type, event_id)| event_type != pending.event_type || event_id != pending.event_id)
        {
            completed.extend(self.take_pending());
        }
        let row = self.parse_row(fields);
        match key {
            Some((event_type, event_id)) => match &mut self.pending {
                Some(pending) => pending.add_row(line, row),
                None => {
                    let (event_type, event_id) = (event_type.to_string(), event_id.to_string());
                    let mut pending = PendingOrder {
                        event_type,
                        event_id,
                        first_line: line,
                        last_line: line,
                        input: EventInput::default(),
                        lines: Vec::new(),
                        failure: None,
                    };
                    match row {
                        Ok((input, order_line)) => {
                            pending.input = input;
                            pending.lines.extend(order_line);
                        }
                        Err(reason) => pending.failure = Some(reason),
                    }
                    self.pending = Some(pending);
                }
            },
            None => {
                let result = row.and_then(|(mut input, order_line)| {
                    if let Some(order_line) = order_line {
                        input.lines = Some(vec![order_line]);
                    }
                    let had_event_id = input.event_id.is_some();
                    parse_event(input, self.now).map(|event| (event, had_event_id))
                });
                completed.push(match result {
                    Ok((event, had_event_id)) => ParsedEvent { line, had_event_id, result: Ok(event) },
                    Err(reason) => ParsedEvent { line, had_event_id: true, result: Err(reason) },
                });
            }
        }
        completed
    }

    /// A row that could not be read at all: rejected, and so is an order it may have belonged to.
    pub fn push_unreadable(&mut self, line: usize, reason: String) -> Vec<ParsedEvent> {
        let mut completed = Vec::new();
        if let Some(pending) = &mut self.pending {
            pending.add_row(line, Err(format!("{reason}; it may have been a line of this order")));
            completed.extend(self.take_pending());
        }
        completed.push(ParsedEvent { line, had_event_id: true, result: Err(reason) });
        completed
    }

    /// The end of the file: the last pending order, if any.
    pub fn finish(mut self) -> Vec<ParsedEvent> {
        self.take_pending().into_iter().collect()
    }

    fn take_pending(&mut self) -> Option<ParsedEvent> {
        self.pending.take().map(|pending| pending.finish(self.now))
    }

    /// `(type, event_id)` of a purchase or return row that has an event id: rows that may be merged.
    fn order_key<'f>(&self, fields: &'f [String]) -> Option<(&'f str, &'f str)> {
        let event_type = fields[self.type_index].trim();
        let event_id = fields[self.event_id_index?].trim();
        (matches!(event_type, "purchase" | "return") && !event_id.is_empty()).then_some((event_type, event_id))
    }

    /// A row as the event's fields and, for purchases and returns, its order line.
    fn parse_row(&self, fields: &[String]) -> Result<(EventInput, Option<OrderLineInput>), String> {
        let mut input = EventInput::default();
        let mut unit_price: Option<String> = None;
        for (column, cell) in self.columns.iter().zip(fields) {
            let value = cell.trim();
            if value.is_empty() {
                continue;
            }
            let text = || Some(value.to_string());
            let list = || Some(value.split('|').map(|part| part.trim().to_string()).collect::<Vec<_>>());
            match column {
                EventColumn::Type => input.event_type = value.to_string(),
                EventColumn::EventId => input.event_id = text(),
                EventColumn::UserId => input.user_id = text(),
                EventColumn::AnonymousId => input.anonymous_id = text(),
                EventColumn::SessionId => input.session_id = text(),
                EventColumn::Timestamp => {
                    input.timestamp = Some(match value.parse::<i64>() {
                        Ok(millis) => TimeInput::Millis(millis),
                        Err(_) => TimeInput::Text(value.to_string()),
                    })
                }
                EventColumn::Channel => input.channel = text(),
                EventColumn::StoreId => input.store_id = text(),
                EventColumn::ItemId => input.item_id = text(),
                EventColumn::Quantity => input.quantity = Some(whole_number("quantity", value)?),
                EventColumn::DwellMs => input.dwell_ms = Some(whole_number("dwell_ms", value)?),
                EventColumn::OrderId => input.order_id = text(),
                EventColumn::Currency => input.currency = text(),
                EventColumn::UnitPrice => unit_price = text(),
                EventColumn::Query => input.query = text(),
                EventColumn::ResultIds => input.result_ids = list(),
                EventColumn::RecommendationId => input.recommendation_id = text(),
                EventColumn::ItemIds => input.item_ids = list(),
                EventColumn::Positions => {
                    input.positions =
                        Some(value.split('|').map(|p| whole_number("positions", p.trim())).collect::<Result<_, _>>()?)
                }
                EventColumn::Position => input.position = Some(whole_number("position", value)?),
                EventColumn::Rating => {
                    input.rating =
                        Some(value.parse().map_err(|_| format!("rating: `{value}` is not a number between 0 and 5"))?)
                }
                EventColumn::Context(key) => {
                    input.context.get_or_insert_default().insert(key.clone(), ScalarValue::Text(value.to_string()));
                }
            }
        }
        if input.event_type.is_empty() {
            return Err("type: `type` is required".into());
        }
        if !matches!(input.event_type.as_str(), "purchase" | "return") {
            if unit_price.is_some() {
                return Err(format!(
                    "unit_price: only purchase and return rows have a `unit_price`, not `{}`",
                    input.event_type
                ));
            }
            return Ok((input, None));
        }
        let (Some(item_id), Some(quantity), Some(unit_price)) =
            (input.item_id.take(), input.quantity.take(), unit_price)
        else {
            return Err(format!(
                "lines: a {} row is one order line and needs `item_id`, `quantity` and `unit_price`",
                input.event_type
            ));
        };
        Ok((input, Some(OrderLineInput { item_id, quantity, unit_price: AmountInput::Text(unit_price) })))
    }
}

/// An integer, also written as `3.0` by spreadsheets.
fn whole_number(field: &str, value: &str) -> Result<i64, String> {
    if let Ok(number) = value.parse::<i64>() {
        return Ok(number);
    }
    match value.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole.parse().map_err(|_| format!("{field}: `{value}` is not a whole number"))
        }
        _ => Err(format!("{field}: `{value}` is not a whole number")),
    }
}

/// The first event-level field a later row of an order gives differently from its first row.
fn conflicting_field(first: &EventInput, later: &EventInput) -> Option<&'static str> {
    macro_rules! compare {
        ($($field:ident),*) => {
            $(
                if later.$field.is_some() && later.$field != first.$field {
                    return Some(stringify!($field));
                }
            )*
        };
    }
    compare!(
        user_id,
        anonymous_id,
        session_id,
        timestamp,
        channel,
        store_id,
        context,
        order_id,
        currency,
        dwell_ms,
        query,
        result_ids,
        recommendation_id,
        item_ids,
        positions,
        position,
        rating
    );
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_core::EventKind;

    fn strings(values: &[&str]) -> Vec<String> {
        values.iter().map(|v| v.to_string()).collect()
    }

    fn assemble(header: &str, rows: &[&str]) -> Vec<ParsedEvent> {
        let mut assembler = CsvEventAssembler::new(&strings(&header.split(',').collect::<Vec<_>>()), Timestamp::now())
            .expect("valid header");
        let mut events = Vec::new();
        for (index, row) in rows.iter().enumerate() {
            events.extend(assembler.push_row(index + 2, &strings(&row.split(',').collect::<Vec<_>>())));
        }
        events.extend(assembler.finish());
        events
    }

    const HEADER: &str =
        "type,event_id,user_id,timestamp,item_id,quantity,unit_price,order_id,currency,context.country";

    #[test]
    fn merges_consecutive_order_rows() {
        let events = assemble(
            HEADER,
            &[
                "view,v1,u1,2024-05-01T12:00:00Z,A,,,,,",
                "purchase,p1,u1,2024-05-01T12:05:00Z,A,2,12.50,o1,GBP,UK",
                "purchase,p1,,,B,1,3,,,",
                "purchase,p1,u1,,C,1.0,0.99,o1,,UK",
                "purchase,,u2,1714565100000,D,1,1,o2,GBP,",
            ],
        );
        assert_eq!(events.len(), 3, "{events:?}");
        assert_eq!(events.iter().map(|e| e.line).collect::<Vec<_>>(), [2, 3, 6]);
        let event = events[1].result.as_ref().unwrap();
        let EventKind::Purchase { order_id, lines } = &event.kind else { panic!("not a purchase") };
        assert_eq!(order_id.as_str(), "o1");
        assert_eq!(lines.iter().map(|l| l.item_id.as_str()).collect::<Vec<_>>(), ["A", "B", "C"]);
        assert_eq!(lines[1].unit_price.minor_units, 300);
        assert_eq!(event.context["country"], ScalarValue::Text("UK".into()));
        let single = events[2].result.as_ref().unwrap();
        assert!(!events[2].had_event_id);
        assert_eq!(single.timestamp.millis(), 1_714_565_100_000);
    }

    #[test]
    fn one_bad_or_contradicting_row_rejects_the_whole_order() {
        let events = assemble(
            HEADER,
            &[
                "purchase,p1,u1,,A,2,12.50,o1,GBP,",
                "purchase,p1,,,B,-1,3,,,",
                "purchase,p2,u1,,A,2,12.50,o2,GBP,",
                "purchase,p2,u9,,B,1,3,,,",
                "return,r1,u1,,A,1,abc,o1,GBP,",
            ],
        );
        assert_eq!(events.len(), 3);
        let reason = events[0].result.as_ref().unwrap_err();
        assert!(reason.contains("lines[1].quantity") && reason.contains("lines 2-3"), "{reason}");
        let reason = events[1].result.as_ref().unwrap_err();
        assert!(reason.contains("line 5 gives a different `user_id`"), "{reason}");
        assert_eq!(events[2].line, 6);
        assert!(events[2].result.is_err());
    }

    #[test]
    fn order_rows_need_their_line_and_others_no_price() {
        let events = assemble(HEADER, &["purchase,p1,u1,,A,,1,o1,GBP,", "view,v1,u1,,A,,2.00,,,"]);
        assert!(events[0].result.as_ref().unwrap_err().contains("needs `item_id`, `quantity` and `unit_price`"));
        assert!(events[1].result.as_ref().unwrap_err().starts_with("unit_price:"));
    }

    #[test]
    fn lists_are_pipe_separated() {
        let events = assemble(
            "type,user_id,query,result_ids,recommendation_id,item_ids,positions",
            &["search,u1,red mug,A|B,,,", "impression,u1,,,rec1,A|B|C,0|1|5"],
        );
        let EventKind::Search { result_ids, .. } = &events[0].result.as_ref().unwrap().kind else { panic!() };
        assert_eq!(result_ids.len(), 2);
        let EventKind::Impression { positions, .. } = &events[1].result.as_ref().unwrap().kind else { panic!() };
        assert_eq!(positions, &[0, 1, 5]);
    }

    #[test]
    fn headers_must_be_known() {
        let error = CsvEventAssembler::new(&strings(&["type", "user", "item_id"]), Timestamp::now()).unwrap_err();
        assert!(error.to_string().contains("\"user\""), "{error}");
        let error = CsvEventAssembler::new(&strings(&["user_id", "item_id"]), Timestamp::now()).unwrap_err();
        assert!(error.to_string().contains("no `type` column"), "{error}");
        assert!(CsvEventAssembler::new(&strings(&["Type", "Context.Country"]), Timestamp::now()).is_ok());
    }

    #[test]
    fn unreadable_rows_reject_the_order_before_them() {
        let mut assembler =
            CsvEventAssembler::new(&strings(&HEADER.split(',').collect::<Vec<_>>()), Timestamp::now()).unwrap();
        assert!(
            assembler
                .push_row(2, &strings(&"purchase,p1,u1,,A,2,12.50,o1,GBP,".split(',').collect::<Vec<_>>()))
                .is_empty()
        );
        let events = assembler.push_unreadable(3, "the row has 3 fields but the header has 10".into());
        assert_eq!(events.len(), 2);
        assert_eq!((events[0].line, events[1].line), (2, 3));
        assert!(events.iter().all(|e| e.result.is_err()));
    }

    #[test]
    fn json_lines_are_the_wire_format() {
        let line =
            br#"{"type":"view","event_id":"e1","user_id":"u1","item_id":"A","timestamp":"2024-05-01T12:00:00Z"}"#;
        let parsed = event_from_json(7, line, Timestamp::now());
        assert_eq!(parsed.line, 7);
        assert_eq!(parsed.result.unwrap().id.as_str(), "e1");
        let parsed = event_from_json(8, br#"{"type":"view","user_id":"u1","item":"A"}"#, Timestamp::now());
        let reason = parsed.result.unwrap_err();
        assert!(reason.starts_with("invalid event: unknown field `item`") && !reason.contains("line 1"), "{reason}");
    }
}
