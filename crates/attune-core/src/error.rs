//! The one validation error type: which field was wrong and why, in words a shop's engineer can act on.

use std::fmt;

/// A rejected input. `field` is a dotted path into the input (`lines[2].quantity`), `code` a stable
/// machine-readable reason, `message` a human explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    pub field: String,
    pub code: &'static str,
    pub message: String,
}

impl ValidationError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.into(), code, message: message.into() }
    }

    pub fn missing(field: impl Into<String>) -> Self {
        let field = field.into();
        let message = format!("`{field}` is required");
        Self { field, code: "missing_field", message }
    }

    /// Prefix the field path, for errors raised inside a nested value (`lines[2]` + `quantity`).
    pub fn within(mut self, parent: &str) -> Self {
        self.field = if self.field.is_empty() { parent.to_string() } else { format!("{parent}.{}", self.field) };
        self
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.field, self.message)
        }
    }
}
