//! What the customer-value code needs from a repeat-purchase model, so BG/NBD and MBG/NBD serve alike.

use super::summary::PurchaseSummary;
use crate::Result;

/// A fitted model of when customers buy again and whether they are still customers.
pub trait RepeatPurchaseModel {
    /// The model's name as shown to people ("BG/NBD", "MBG/NBD").
    fn name(&self) -> &'static str;

    /// Probability that the customer is still active at the end of their observation period.
    fn p_alive(&self, customer: &PurchaseSummary) -> f64;

    /// Expected number of purchases in a period of length `t` by a new customer, E[X(t)].
    fn expected_purchases(&self, t: f64) -> Result<f64>;

    /// Expected number of purchases in the next `t` periods by a customer with the given history,
    /// E[Y(t) | x, tₓ, T].
    fn conditional_expected_purchases(&self, customer: &PurchaseSummary, t: f64) -> Result<f64>;

    /// Mean purchase rate per period of a customer while active, E[λ] = r/α.
    fn mean_purchase_rate(&self) -> f64;
}
