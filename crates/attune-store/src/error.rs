//! Storage errors.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} already exists")]
    Conflict(String),
    #[error("database error: {0}")]
    Database(#[from] rusqlite::Error),
    #[error("stored data cannot be read back: {0}")]
    Corrupt(String),
    #[error("storage i/o error: {0}")]
    Io(#[from] std::io::Error),
}
