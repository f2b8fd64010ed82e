//! Customer analytics: who is still a customer, how much they will buy, what they are worth, and which
//! segment they belong to.
//!
//! * [`summary`] turns dated transactions into each customer's frequency, recency and age.
//! * [`bg_nbd`] is the BG/NBD repeat-purchase model (Fader, Hardie & Lee 2005): P(alive) and expected
//!   purchases.
//! * [`gamma_gamma`] is the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV").
//! * [`lifetime_value`] combines the two into a discounted expected lifetime value.
//! * [`rfm`] scores recency, frequency and monetary value in quintiles and names the segment.

pub mod bg_nbd;
pub mod gamma_gamma;
pub mod lifetime_value;
pub mod rfm;
pub mod summary;

pub use bg_nbd::{BgNbdFit, BgNbdParams, fit_bg_nbd};
pub use gamma_gamma::{GammaGammaFit, GammaGammaParams, SpendObservation, fit_gamma_gamma};
pub use lifetime_value::{LifetimeValueSettings, expected_lifetime_value};
pub use rfm::{RfmInput, RfmScore, Segment, rfm_segments};
pub use summary::{CustomerSummary, PurchaseSummary, Transaction, summarize_transactions};
