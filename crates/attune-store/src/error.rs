//! Storage errors.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("postgresql error: {0}")]
    Postgres(postgres::Error),
    /// The database cannot be reached (refused, dropped or timed-out connections); nothing was written, so the
    /// caller may retry once it is back.
    #[error("the database is unreachable: {0}")]
    Unavailable(String),
    #[error("stored data cannot be read back: {0}")]
    Corrupt(String),
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
}

impl StoreError {
    /// Whether the failure is the database being unreachable rather than a fault in the request or the data.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Unavailable(_))
    }
}

impl From<postgres::Error> for StoreError {
    /// Connection failures (no server error at all, a closed connection, SQLSTATE class 08, or the server
    /// shutting the session down: 57P01–57P03) become [`StoreError::Unavailable`]; the rest stay database errors.
    fn from(error: postgres::Error) -> Self {
        let connection_lost = match error.code() {
            None => error.as_db_error().is_none(),
            Some(state) => state.code().starts_with("08") || matches!(state.code(), "57P01" | "57P02" | "57P03"),
        };
        if connection_lost || error.is_closed() { Self::Unavailable(error.to_string()) } else { Self::Postgres(error) }
    }
}

impl From<r2d2::Error> for StoreError {
    /// The pool found no usable connection within its timeout.
    fn from(error: r2d2::Error) -> Self {
        Self::Unavailable(error.to_string())
    }
}
