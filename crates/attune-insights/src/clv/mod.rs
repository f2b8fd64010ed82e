//! Customer analytics: who is still a customer, how much they will buy, what they are worth, and which
//! segment they belong to.
//!
//! * [`summary`] turns dated transactions into each customer's frequency, recency and age.
//! * [`bg_nbd`] is the BG/NBD repeat-purchase model (Fader, Hardie & Lee 2005): P(alive) and expected
//!   purchases.
//! * [`mbg_nbd`] is MBG/NBD (Batislam, Denizel & Filiztekin 2007), which also lets one-time buyers drop out;
//!   [`purchase_model`] is what both offer to the value code.
//! * [`gamma_gamma`] is the Gamma-Gamma spend model (Fader, Hardie & Lee 2005, "RFM and CLV").
//! * [`lifetime_value`] combines the two into a discounted expected lifetime value.
//! * [`identifiable`] decides whether a fit's figures may be served.
//! * [`rfm`] scores recency, frequency and monetary value in quintiles and names the segment.

pub mod bg_nbd;
pub mod gamma_gamma;
pub mod identifiable;
pub mod lifetime_value;
pub mod mbg_nbd;
pub mod purchase_model;
pub mod rfm;
pub mod summary;

pub use bg_nbd::{BgNbdFit, BgNbdParams, fit_bg_nbd};
pub use gamma_gamma::{GammaGammaFit, GammaGammaParams, SpendObservation, fit_gamma_gamma};
pub use identifiable::{
    CustomerModelFit, IdentifiabilityRules, check_customer_counts, check_customer_model, check_dropout,
};
pub use lifetime_value::{LifetimeValueSettings, expected_lifetime_value};
pub use mbg_nbd::{MbgNbdFit, MbgNbdParams, fit_mbg_nbd};
pub use purchase_model::RepeatPurchaseModel;
pub use rfm::{RfmInput, RfmScore, Segment, rfm_segments};
pub use summary::{CustomerSummary, PurchaseSummary, Transaction, summarize_transactions};
