//! What both backends store the same way: an event's indexed columns and JSON payload, item and user
//! documents, API key rows, and the conversions between stored values and domain types.

use crate::types::{ApiKeyRecord, ConsoleSessionRecord, StoredEvent};
use crate::{StoreError, StoreResult};
use attune_core::{ApiKeyKind, Consent, ConsentStatement, Event, EventInput, Item, TenantId, Timestamp, User, UserId};

/// Milliseconds in a UTC day: daily event counts are kept per `ts / DAY_MILLIS`.
pub(crate) const DAY_MILLIS: i64 = 86_400_000;

/// An event prepared for insertion: indexed columns plus the wire-form JSON payload.
pub(crate) struct EventRow {
    pub event_id: String,
    pub event_type: &'static str,
    pub user_id: Option<String>,
    pub anonymous_id: Option<String>,
    pub session_id: Option<String>,
    pub timestamp: i64,
    pub channel: &'static str,
    pub store_id: Option<String>,
    pub item_id: Option<String>,
    pub payload: String,
}

impl EventRow {
    pub fn new(event: &Event) -> StoreResult<Self> {
        Ok(Self {
            event_id: event.id.to_string(),
            event_type: event.event_type().as_str(),
            user_id: event.subject.user_id.as_ref().map(ToString::to_string),
            anonymous_id: event.subject.anonymous_id.as_ref().map(ToString::to_string),
            session_id: event.session_id.as_ref().map(ToString::to_string),
            timestamp: event.timestamp.millis(),
            channel: event.channel.as_str(),
            store_id: event.store_id.as_ref().map(ToString::to_string),
            item_id: event.kind.primary_item().map(ToString::to_string),
            payload: to_json(&event.to_input())?,
        })
    }

    /// The UTC day number the event counts towards.
    pub fn day(&self) -> i64 {
        self.timestamp.div_euclid(DAY_MILLIS)
    }
}

pub(crate) fn corrupt(what: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(what.to_string())
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(corrupt)
}

pub(crate) fn timestamp(millis: i64) -> StoreResult<Timestamp> {
    Timestamp::from_millis(millis).map_err(corrupt)
}

pub(crate) fn read_item(doc: &str) -> StoreResult<Item> {
    serde_json::from_str(doc).map_err(|e| corrupt(format!("item document: {e}")))
}

pub(crate) fn read_user(doc: &str) -> StoreResult<User> {
    serde_json::from_str(doc).map_err(|e| corrupt(format!("user document: {e}")))
}

/// `user` as an upsert stores it over `previous` (the stored document, if any): the first `created_at` and the
/// stored consent are kept, since consent changes only through the consent ledger.
pub(crate) fn user_over(user: &User, previous: Option<&str>) -> StoreResult<User> {
    let mut stored = user.clone();
    if let Some(previous) = previous.map(read_user).transpose()? {
        stored.created_at = previous.created_at;
        stored.consent = previous.consent;
    }
    Ok(stored)
}

/// `user` after `statements`, or a new profile of `id` with the default consent and them.
pub(crate) fn user_with_consent(
    id: &UserId,
    previous: Option<&str>,
    statements: &[ConsentStatement],
) -> StoreResult<User> {
    let now = Timestamp::now();
    let mut user = match previous.map(read_user).transpose()? {
        Some(user) => user,
        None => User {
            id: id.clone(),
            traits: Default::default(),
            consent: Consent::default(),
            created_at: now,
            updated_at: now,
        },
    };
    for statement in statements {
        user.consent.apply(statement);
    }
    user.updated_at = now;
    Ok(user)
}

/// The columns of `console_sessions`, in the order the backends select them.
pub(crate) const CONSOLE_SESSION_COLUMNS: &str =
    "session_id, token_hash, tenant_id, key_id, form_token, user_agent, created_at, expires_at";

pub(crate) type ConsoleSessionRow = (String, String, String, String, String, String, i64, i64);

pub(crate) fn console_session_from_row(row: ConsoleSessionRow) -> StoreResult<ConsoleSessionRecord> {
    let (session_id, token_hash, tenant, key_id, form_token, user_agent, created, expires) = row;
    Ok(ConsoleSessionRecord {
        session_id,
        token_hash,
        tenant_id: TenantId::parse_slug(&tenant).map_err(corrupt)?,
        key_id,
        form_token,
        user_agent,
        created_at: timestamp(created)?,
        expires_at: timestamp(expires)?,
    })
}

pub(crate) fn read_consent_statement(doc: &str) -> StoreResult<ConsentStatement> {
    serde_json::from_str(doc).map_err(|e| corrupt(format!("consent statement: {e}")))
}

/// The JSON path of the consent flag of `purpose` in a user document. Purpose names are letters, digits and `_`
/// (checked), so the path can be written into SQL.
pub(crate) fn consent_path(purpose: &attune_core::Purpose) -> StoreResult<String> {
    let name = purpose.name();
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        return Err(corrupt(format!("`{name}` is not a purpose name")));
    }
    Ok(match purpose {
        attune_core::Purpose::Other(_) => format!("consent.other.{name}"),
        _ => format!("consent.{name}"),
    })
}

pub(crate) fn read_tenant_settings(doc: &str) -> StoreResult<attune_core::TenantSettings> {
    serde_json::from_str(doc).map_err(|e| corrupt(format!("tenant settings: {e}")))
}

pub(crate) fn read_anonymous_id(id: String) -> StoreResult<attune_core::AnonymousId> {
    attune_core::AnonymousId::parse(id).map_err(corrupt)
}

pub(crate) fn read_event(seq: i64, received_at: i64, payload: &str) -> StoreResult<StoredEvent> {
    let input: EventInput = serde_json::from_str(payload).map_err(|e| corrupt(format!("event {seq}: {e}")))?;
    let received_at = timestamp(received_at)?;
    let event = Event::parse(input, received_at).map_err(|e| corrupt(format!("event {seq}: {e}")))?;
    Ok(StoredEvent { seq, received_at, event })
}

/// An item's category path as stored in its own column (for filtering).
pub(crate) fn category_column(item: &Item) -> String {
    item.category_path.join(" > ")
}

/// Escape `%`, `_` and `\` for a `LIKE ... ESCAPE '\'` pattern matching `text` anywhere.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// An `api_keys` row: key id, tenant, kind, label, hash, created, revoked.
pub(crate) type ApiKeyRow = (String, String, String, String, String, i64, Option<i64>);

pub(crate) fn api_key_from_row(row: ApiKeyRow) -> StoreResult<ApiKeyRecord> {
    let (key_id, tenant_id, kind, label, secret_hash, created_at, revoked_at) = row;
    Ok(ApiKeyRecord {
        key_id,
        tenant_id: TenantId::parse(tenant_id).map_err(corrupt)?,
        kind: ApiKeyKind::parse(&kind).ok_or_else(|| corrupt(format!("api key kind `{kind}`")))?,
        label,
        secret_hash,
        created_at: timestamp(created_at)?,
        revoked_at: revoked_at.map(timestamp).transpose()?,
    })
}

/// An embedding vector as stored: little-endian `f32`s.
pub(crate) fn vector_bytes(vector: &[f32]) -> Vec<u8> {
    vector.iter().flat_map(|x| x.to_le_bytes()).collect()
}

pub(crate) fn vector_from_bytes(item: &str, bytes: &[u8]) -> StoreResult<Vec<f32>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(corrupt(format!("embedding of item {item} has {} bytes", bytes.len())));
    }
    Ok(bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect())
}

/// Pages of a keyset listing: one row more than `limit` was read to learn whether another page follows.
pub(crate) fn split_page<T, K>(mut rows: Vec<T>, limit: usize, key: impl Fn(&T) -> K) -> (Vec<T>, Option<K>) {
    if rows.len() > limit {
        rows.truncate(limit);
        let next = rows.last().map(key);
        (rows, next)
    } else {
        (rows, None)
    }
}
