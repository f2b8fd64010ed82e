//! Attune's predictive analytics for retailers: demand forecasts, inventory policy, churn and customer
//! lifetime value, and customer segments.
//!
//! * [`forecast`] — per-series automatic model choice among seasonal naive, exponential smoothing (the ETS
//!   family, selected by AICc), the Theta method and Croston/TSB for intermittent demand; prediction
//!   intervals; rolling-origin backtests scored by MASE and sMAPE.
//! * [`inventory`] — safety stock, reorder point, days of cover, stockout risk and overstock flags from a
//!   demand forecast and a lead time, and a reorder suggestion list.
//! * [`clv`] — BG/NBD and MBG/NBD (repeat purchases, churn) and Gamma-Gamma (spend) models fitted by maximum
//!   likelihood: probability a customer is still active, expected purchases, expected lifetime value, with a
//!   check that a fit is identifiable before its figures are used; RFM segments.
//!
//! This is a pure domain crate: no I/O of any kind (files, network, SQL, async). Every computation is
//! deterministic: the same input gives the same output, also when series are fitted in parallel.

pub mod clv;
pub mod error;
pub mod forecast;
pub mod inventory;
pub mod normal;
pub mod optim;
pub mod special;

pub use error::InsightsError;

/// Result type of this crate.
pub type Result<T> = std::result::Result<T, InsightsError>;
