//! From dated transactions to the summaries the customer models use.
//!
//! Following the published BG/NBD and Gamma-Gamma analyses: all purchases a customer makes on one day are
//! one transaction (amounts added); the first transaction starts the customer's clock and is not a repeat;
//! frequency is the number of repeat transactions up to the end of calibration, recency the time from the
//! first to the last of them, age (T) the time from the first to the end of calibration; monetary value
//! is the mean amount of the repeat transactions.

use std::collections::BTreeMap;

use crate::{InsightsError, Result};

/// A customer's repeat-purchase history in model time units (for example weeks).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PurchaseSummary {
    /// Number of repeat transactions, x.
    pub frequency: u32,
    /// Time from the first to the last transaction, tₓ (0 when there is no repeat).
    pub recency: f64,
    /// Time from the first transaction to the end of the observation period, T.
    pub age: f64,
}

impl PurchaseSummary {
    /// Checks 0 ≤ recency ≤ age, finite values, and recency 0 when frequency is 0.
    pub fn new(frequency: u32, recency: f64, age: f64) -> Result<Self> {
        if !(recency.is_finite() && age.is_finite() && recency >= 0.0 && recency <= age) {
            return Err(InsightsError::invalid(format!("need 0 <= recency <= age, got recency {recency}, age {age}")));
        }
        if frequency == 0 && recency != 0.0 {
            return Err(InsightsError::invalid("a customer without repeat purchases has recency 0"));
        }
        Ok(Self { frequency, recency, age })
    }
}

/// One purchase: who, which day (any integer day count, for example days since 1970-01-01), how much.
#[derive(Debug, Clone, PartialEq)]
pub struct Transaction<K> {
    /// The customer's key.
    pub customer: K,
    /// Day number of the purchase.
    pub day: i64,
    /// Amount spent.
    pub amount: f64,
}

/// Everything the customer models and the RFM segments need about one customer.
#[derive(Debug, Clone, PartialEq)]
pub struct CustomerSummary<K> {
    /// The customer's key.
    pub customer: K,
    /// Frequency, recency and age in model periods.
    pub purchases: PurchaseSummary,
    /// Mean amount of the repeat transactions (None without repeats).
    pub mean_repeat_spend: Option<f64>,
    /// Day of the first transaction.
    pub first_day: i64,
    /// Day of the last transaction up to the end of calibration.
    pub last_day: i64,
    /// Number of transactions (distinct purchase days), the first included.
    pub transactions: u32,
    /// Total amount spent up to the end of calibration.
    pub total_spend: f64,
}

/// Summarizes the transactions made up to and including `calibration_end` (a day number), measuring time
/// in periods of `days_per_period` days (7 for weeks). Customers are returned in key order; a customer
/// whose first purchase is after `calibration_end` is left out.
pub fn summarize_transactions<K: Ord + Clone>(
    transactions: &[Transaction<K>],
    calibration_end: i64,
    days_per_period: f64,
) -> Result<Vec<CustomerSummary<K>>> {
    if !(days_per_period > 0.0 && days_per_period.is_finite()) {
        return Err(InsightsError::invalid("days_per_period must be positive"));
    }
    let mut by_customer: BTreeMap<&K, BTreeMap<i64, f64>> = BTreeMap::new();
    for t in transactions {
        if !t.amount.is_finite() {
            return Err(InsightsError::invalid(format!("transaction amount {} is not finite", t.amount)));
        }
        if t.day <= calibration_end {
            *by_customer.entry(&t.customer).or_default().entry(t.day).or_insert(0.0) += t.amount;
        }
    }
    let summaries = by_customer
        .into_iter()
        .filter_map(|(customer, days)| {
            let (&first_day, _) = days.first_key_value()?;
            let (&last_day, _) = days.last_key_value()?;
            let transactions = days.len() as u32;
            let total_spend: f64 = days.values().sum();
            let repeat_spend: f64 = days.values().skip(1).sum();
            let frequency = transactions - 1;
            let purchases = PurchaseSummary {
                frequency,
                recency: (last_day - first_day) as f64 / days_per_period,
                age: (calibration_end - first_day) as f64 / days_per_period,
            };
            let mean_repeat_spend = (frequency > 0).then(|| repeat_spend / f64::from(frequency));
            Some(CustomerSummary {
                customer: customer.clone(),
                purchases,
                mean_repeat_spend,
                first_day,
                last_day,
                transactions,
                total_spend,
            })
        })
        .collect();
    Ok(summaries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tx(customer: u32, day: i64, amount: f64) -> Transaction<u32> {
        Transaction { customer, day, amount }
    }

    #[test]
    fn same_day_purchases_are_one_transaction_and_first_is_not_a_repeat() {
        let txs = [tx(1, 0, 10.0), tx(1, 0, 5.0), tx(1, 14, 20.0), tx(1, 28, 30.0), tx(1, 100, 99.0), tx(2, 7, 4.0)];
        let s = summarize_transactions(&txs, 70, 7.0).unwrap();
        assert_eq!(s.len(), 2);
        let one = &s[0];
        assert_eq!(one.purchases, PurchaseSummary { frequency: 2, recency: 4.0, age: 10.0 });
        assert_eq!(one.mean_repeat_spend, Some(25.0));
        assert_eq!(one.total_spend, 65.0);
        assert_eq!(one.transactions, 3);
        let two = &s[1];
        assert_eq!(two.purchases, PurchaseSummary { frequency: 0, recency: 0.0, age: 9.0 });
        assert_eq!(two.mean_repeat_spend, None);
    }

    #[test]
    fn customers_first_seen_after_calibration_are_left_out() {
        let s = summarize_transactions(&[tx(1, 80, 1.0)], 70, 7.0).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn validates_summaries() {
        assert!(PurchaseSummary::new(1, 5.0, 4.0).is_err());
        assert!(PurchaseSummary::new(0, 1.0, 4.0).is_err());
        assert!(PurchaseSummary::new(2, 3.0, 4.0).is_ok());
    }
}
