//! Exponential smoothing state-space models, ETS(error, trend, season), after Hyndman, Koehler, Ord &
//! Snyder (2008), "Forecasting with exponential smoothing: the state space approach".
//!
//! * `spec` — the model family: additive or multiplicative error; no, additive or additive-damped trend;
//!   no, additive or multiplicative season.
//! * `recursion` — the state recursions and the likelihood.
//! * `init` — heuristic starting values for the initial states.
//! * `layout` — the optimizer's parameter vector and the maps that keep parameters admissible.
//! * `fit` — maximum likelihood by Nelder–Mead over smoothing parameters and initial states, AICc,
//!   the automatic choice, and forecasts with prediction intervals.

mod fit;
mod init;
mod layout;
mod recursion;
mod spec;

pub use fit::{EtsModel, EtsParams, EtsState, auto_ets, fit_ets};
pub use spec::{ErrorKind, EtsSpec, SeasonKind, TrendKind};
