//! The ETS model family and its names, ETS(A,Ad,M) and so on.

use std::fmt;

/// How the error enters the observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ErrorKind {
    /// yₜ = μₜ + εₜ
    Additive,
    /// yₜ = μₜ (1 + εₜ)
    Multiplicative,
}

/// The trend component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TrendKind {
    /// No trend.
    None,
    /// Linear trend.
    Additive,
    /// Linear trend damped by φ < 1.
    Damped,
}

/// The seasonal component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SeasonKind {
    /// No season.
    None,
    /// Seasonal effects added to the level.
    Additive,
    /// Seasonal effects multiplying the level.
    Multiplicative,
}

/// One member of the ETS family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EtsSpec {
    /// Error type.
    pub error: ErrorKind,
    /// Trend type.
    pub trend: TrendKind,
    /// Season type.
    pub season: SeasonKind,
}

impl EtsSpec {
    /// Shorthand constructor.
    pub const fn new(error: ErrorKind, trend: TrendKind, season: SeasonKind) -> Self {
        Self { error, trend, season }
    }

    /// The models the automatic choice considers, as in the `forecast` R package's defaults: all fifteen
    /// without multiplicative trend, less additive-error models with a multiplicative season (numerically
    /// unstable); multiplicative models only for strictly positive data, seasonal ones only when `seasonal`.
    pub fn candidates(positive: bool, seasonal: bool) -> Vec<EtsSpec> {
        let errors: &[ErrorKind] =
            if positive { &[ErrorKind::Additive, ErrorKind::Multiplicative] } else { &[ErrorKind::Additive] };
        let seasons: &[SeasonKind] = match (seasonal, positive) {
            (false, _) => &[SeasonKind::None],
            (true, false) => &[SeasonKind::None, SeasonKind::Additive],
            (true, true) => &[SeasonKind::None, SeasonKind::Additive, SeasonKind::Multiplicative],
        };
        let mut specs = Vec::new();
        for &error in errors {
            for trend in [TrendKind::None, TrendKind::Additive, TrendKind::Damped] {
                for &season in seasons {
                    if error == ErrorKind::Additive && season == SeasonKind::Multiplicative {
                        continue;
                    }
                    specs.push(EtsSpec { error, trend, season });
                }
            }
        }
        specs
    }

    /// Whether the model has a trend state.
    pub fn has_trend(&self) -> bool {
        self.trend != TrendKind::None
    }

    /// Whether the model has seasonal states.
    pub fn has_season(&self) -> bool {
        self.season != SeasonKind::None
    }
}

impl fmt::Display for EtsSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let error = match self.error {
            ErrorKind::Additive => "A",
            ErrorKind::Multiplicative => "M",
        };
        let trend = match self.trend {
            TrendKind::None => "N",
            TrendKind::Additive => "A",
            TrendKind::Damped => "Ad",
        };
        let season = match self.season {
            SeasonKind::None => "N",
            SeasonKind::Additive => "A",
            SeasonKind::Multiplicative => "M",
        };
        write!(f, "ETS({error},{trend},{season})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_counts_match_the_forecast_package() {
        assert_eq!(EtsSpec::candidates(true, true).len(), 15);
        assert_eq!(EtsSpec::candidates(false, true).len(), 6);
        assert_eq!(EtsSpec::candidates(true, false).len(), 6);
        assert_eq!(EtsSpec::candidates(false, false).len(), 3);
    }

    #[test]
    fn names() {
        let spec = EtsSpec::new(ErrorKind::Multiplicative, TrendKind::Damped, SeasonKind::Multiplicative);
        assert_eq!(spec.to_string(), "ETS(M,Ad,M)");
    }
}
