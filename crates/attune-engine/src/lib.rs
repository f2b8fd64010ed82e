//! Attune's engine: everything between the store and the HTTP server. Synchronous Rust over the `Store`
//! trait: per-tenant serving state, model training and hot swaps, background tasks, schedulers, and the
//! lifecycle that starts and stops them.
//!
//! The [`Engine`] composes one service per capability — [`recs::RecsService`], [`search::SearchService`],
//! [`insights::InsightsService`] — over shared parts: the catalog copy ([`catalog`]), the event log of the
//! engine's own serving ([`event_log`]), the task registry ([`tasks`]) and the background threads it owns
//! ([`background`]). Every failure is an [`EngineError`] with a stable code.
//!
//! This crate knows nothing of HTTP, JSON APIs or pages: the server turns requests into calls and results
//! into views. Calls that read the store or compute are blocking; callers on an async runtime run them on a
//! blocking thread.

pub mod background;
pub mod catalog;
mod changes;
pub mod engine;
pub mod error;
pub mod event_log;
pub mod export;
pub mod insights;
pub mod keys;
pub mod popular;
pub mod privacy;
pub mod recs;
pub mod retention;
pub mod search;
pub mod snapshot;
pub mod tasks;

pub use engine::{Engine, EngineConfig, EngineHandle, ShutdownReport};
pub use error::{EngineError, EngineResult};
