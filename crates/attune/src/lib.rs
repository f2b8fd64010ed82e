//! The `attune` command's library half: everything the CLI does, testable without spawning a process.

pub mod demo;
pub mod import;
