//! Minimizers for the models' likelihoods: Nelder–Mead (derivative-free, for the exponential smoothing
//! state-space models) and BFGS (quasi-Newton with analytic gradients, for the customer models).

mod bfgs;
mod nelder_mead;

pub use bfgs::{BfgsOptions, bfgs};
pub use nelder_mead::{NelderMeadOptions, nelder_mead};

/// Where a minimizer stopped.
#[derive(Debug, Clone, PartialEq)]
pub struct Minimum {
    /// The best point found.
    pub x: Vec<f64>,
    /// The objective at `x`.
    pub f: f64,
    /// Objective evaluations used.
    pub evaluations: usize,
    /// Whether the convergence test passed (rather than the evaluation budget running out).
    pub converged: bool,
}
