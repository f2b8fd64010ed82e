//! Demo data (in progress)
