//! Import (in progress)
