//! RFM segmentation: recency, frequency and monetary value scored 1–5 by quintile, and a readable segment
//! name with a suggested action for each combination.
//!
//! The segment comes from the recency score and the rounded mean of the frequency and monetary scores.

use std::fmt;

use crate::{InsightsError, Result};

/// One customer's raw RFM values.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RfmInput {
    /// Days since the last purchase (lower is better).
    pub days_since_last_purchase: f64,
    /// Number of purchases.
    pub purchases: u32,
    /// Money spent (total or mean per purchase; the caller chooses, consistently).
    pub monetary: f64,
}

/// Quintile scores, 5 best.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RfmScore {
    /// 5: most recent fifth of customers.
    pub recency: u8,
    /// 5: most frequent fifth.
    pub frequency: u8,
    /// 5: highest-spending fifth.
    pub monetary: u8,
}

/// A named customer segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Segment {
    /// Bought recently, buy often, spend the most.
    Champions,
    /// Buy often and spend well, not quite the most recent.
    LoyalCustomers,
    /// Recent customers with average frequency and spend.
    PotentialLoyalists,
    /// Bought very recently for the first time or rarely.
    NewCustomers,
    /// Recent, but buy rarely and spend little.
    Promising,
    /// Middling recency, frequency and spend.
    NeedAttention,
    /// Middling recency, low frequency and spend.
    AboutToSleep,
    /// Used to buy often and spend well, but not for a while.
    AtRisk,
    /// Were among the best customers, now long gone quiet.
    CannotLoseThem,
    /// Bought rarely and not for a while.
    Hibernating,
    /// Lowest recency, frequency and spend.
    Lost,
}

impl Segment {
    /// Every segment, best first.
    pub const ALL: [Segment; 11] = [
        Segment::Champions,
        Segment::LoyalCustomers,
        Segment::PotentialLoyalists,
        Segment::NewCustomers,
        Segment::Promising,
        Segment::NeedAttention,
        Segment::AboutToSleep,
        Segment::AtRisk,
        Segment::CannotLoseThem,
        Segment::Hibernating,
        Segment::Lost,
    ];

    /// The segment for a recency score and a combined frequency–monetary score (both 1–5).
    pub fn from_scores(recency: u8, frequency_monetary: u8) -> Segment {
        match (recency.clamp(1, 5), frequency_monetary.clamp(1, 5)) {
            (5, 4..=5) | (4, 5) => Segment::Champions,
            (3..=4, 4..=5) => Segment::LoyalCustomers,
            (4..=5, 2..=3) => Segment::PotentialLoyalists,
            (5, _) => Segment::NewCustomers,
            (4, _) => Segment::Promising,
            (3, 3) => Segment::NeedAttention,
            (3, _) => Segment::AboutToSleep,
            (1..=2, 5) => Segment::CannotLoseThem,
            (1..=2, 3..=4) => Segment::AtRisk,
            (2, _) => Segment::Hibernating,
            _ => Segment::Lost,
        }
    }

    /// Readable name.
    pub fn name(self) -> &'static str {
        match self {
            Segment::Champions => "Champions",
            Segment::LoyalCustomers => "Loyal customers",
            Segment::PotentialLoyalists => "Potential loyalists",
            Segment::NewCustomers => "New customers",
            Segment::Promising => "Promising",
            Segment::NeedAttention => "Need attention",
            Segment::AboutToSleep => "About to sleep",
            Segment::AtRisk => "At risk",
            Segment::CannotLoseThem => "Can't lose them",
            Segment::Hibernating => "Hibernating",
            Segment::Lost => "Lost",
        }
    }

    /// What a retailer might do for this segment.
    pub fn suggested_action(self) -> &'static str {
        match self {
            Segment::Champions => "reward them; early access to new products; ask for reviews",
            Segment::LoyalCustomers => "upsell higher-value products; loyalty programme",
            Segment::PotentialLoyalists => "membership or loyalty offer; personal recommendations",
            Segment::NewCustomers => "onboarding; help with the first repeat purchase",
            Segment::Promising => "build awareness; free trials or samples",
            Segment::NeedAttention => "limited-time offers based on past purchases",
            Segment::AboutToSleep => "recommend popular products; renewal discounts",
            Segment::AtRisk => "personal win-back messages; helpful resources",
            Segment::CannotLoseThem => "win them back with new products; talk to them",
            Segment::Hibernating => "relevant offers at a low cost to reach",
            Segment::Lost => "revive interest with a reach-out campaign, or let go",
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Scores every customer by quintile among `customers` and names their segment; results are in input
/// order. Equal values get equal scores.
pub fn rfm_segments(customers: &[RfmInput]) -> Result<Vec<(RfmScore, Segment)>> {
    for c in customers {
        if !(c.days_since_last_purchase.is_finite() && c.monetary.is_finite()) {
            return Err(InsightsError::invalid("RFM values must be finite"));
        }
    }
    // Recency: fewer days is better, so score on the negated value.
    let recency = quintile_scores(&customers.iter().map(|c| -c.days_since_last_purchase).collect::<Vec<_>>());
    let frequency = quintile_scores(&customers.iter().map(|c| f64::from(c.purchases)).collect::<Vec<_>>());
    let monetary = quintile_scores(&customers.iter().map(|c| c.monetary).collect::<Vec<_>>());
    Ok((0..customers.len())
        .map(|i| {
            let score = RfmScore { recency: recency[i], frequency: frequency[i], monetary: monetary[i] };
            let frequency_monetary = (f64::from(score.frequency + score.monetary) / 2.0).round() as u8;
            (score, Segment::from_scores(score.recency, frequency_monetary))
        })
        .collect())
}

/// 1 + ⌊5 · (share of values strictly below v)⌋: 1..=5, higher for higher values, ties equal.
fn quintile_scores(values: &[f64]) -> Vec<u8> {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    values
        .iter()
        .map(|v| {
            let below = sorted.partition_point(|s| s < v) as f64;
            1 + (5.0 * below / n).floor().min(4.0) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_score_pair_has_a_segment_and_names_are_distinct() {
        let mut seen = std::collections::BTreeSet::new();
        for r in 1..=5 {
            for fm in 1..=5 {
                seen.insert(Segment::from_scores(r, fm));
            }
        }
        assert_eq!(seen.len(), Segment::ALL.len(), "every segment is reachable");
        let names: std::collections::BTreeSet<_> = Segment::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(names.len(), Segment::ALL.len());
    }

    #[test]
    fn best_and_worst_customers() {
        let customers: Vec<RfmInput> = (0..10)
            .map(|i| RfmInput {
                days_since_last_purchase: f64::from(100 - 10 * i),
                purchases: i as u32,
                monetary: f64::from(i) * 10.0,
            })
            .collect();
        let segments = rfm_segments(&customers).unwrap();
        assert_eq!(segments[9].1, Segment::Champions);
        assert_eq!(segments[9].0, RfmScore { recency: 5, frequency: 5, monetary: 5 });
        assert_eq!(segments[0].1, Segment::Lost);
        assert_eq!(segments[0].0, RfmScore { recency: 1, frequency: 1, monetary: 1 });
    }

    #[test]
    fn ties_share_a_score() {
        assert_eq!(quintile_scores(&[1.0, 1.0, 1.0, 2.0]), vec![1, 1, 1, 4]);
    }
}
