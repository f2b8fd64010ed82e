//! The `attune` command's library half: everything the CLI does, testable without spawning a process.

pub mod bench;
pub mod cli;
pub mod config;
pub mod demo;
pub mod eval;
pub mod import;
pub mod recs_bench;
pub mod search_bench;
