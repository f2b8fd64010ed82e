//! The `attune` command's library half: everything the CLI does, testable without spawning a process.

pub mod bench;
pub mod cli;
pub mod cluster_bench;
pub mod config;
pub mod cpu;
pub mod demo;
pub mod eval;
pub mod import;
pub mod migrate;
pub mod recs_bench;
pub mod scale_bench;
pub mod scale_shop;
pub mod search_bench;
