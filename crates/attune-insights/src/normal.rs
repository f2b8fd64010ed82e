//! The standard normal distribution: cumulative distribution function and quantile function, used for
//! prediction intervals, safety stock and stockout risk.

/// erfc(x) = 1 - erf(x), accurate to about 1e-15 relative error, via the regularized incomplete gamma
/// function Q(1/2, x²).
pub fn erfc(x: f64) -> f64 {
    if x.is_nan() {
        return f64::NAN;
    }
    if x < 0.0 {
        return 2.0 - erfc(-x);
    }
    let x2 = x * x;
    let ln_gamma_half = 0.5 * std::f64::consts::PI.ln();
    if x2 < 1.5 {
        // Series for the lower regularized gamma P(1/2, x²).
        let a = 0.5;
        let mut term: f64 = 1.0 / a;
        let mut sum = term;
        let mut n = 1.0;
        while term.abs() > sum.abs() * 1e-17 {
            term *= x2 / (a + n);
            sum += term;
            n += 1.0;
        }
        1.0 - sum * (-x2 + a * x2.ln() - ln_gamma_half).exp()
    } else {
        // Continued fraction (modified Lentz) for the upper regularized gamma Q(1/2, x²).
        let a = 0.5;
        let tiny = 1e-300;
        let mut b = x2 + 1.0 - a;
        let mut c = 1.0 / tiny;
        let mut d = 1.0 / b;
        let mut h = d;
        for i in 1..300 {
            let an = -f64::from(i) * (f64::from(i) - a);
            b += 2.0;
            d = an * d + b;
            if d.abs() < tiny {
                d = tiny;
            }
            c = b + an / c;
            if c.abs() < tiny {
                c = tiny;
            }
            d = 1.0 / d;
            let delta = d * c;
            h *= delta;
            if (delta - 1.0).abs() < 1e-16 {
                break;
            }
        }
        (-x2 + a * x2.ln() - ln_gamma_half).exp() * h
    }
}

/// Φ(z), the standard normal cumulative distribution function.
pub fn cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Φ⁻¹(p), the standard normal quantile function, for 0 < p < 1 (±∞ at the ends, NaN outside).
///
/// A rational starting approximation (relative error about 1e-9) polished by one Halley step.
pub fn quantile(p: f64) -> f64 {
    if p.is_nan() || !(0.0..=1.0).contains(&p) {
        return f64::NAN;
    }
    if p == 0.0 {
        return f64::NEG_INFINITY;
    }
    if p == 1.0 {
        return f64::INFINITY;
    }
    const A: [f64; 6] = [
        -3.969_683_028_665_376e1,
        2.209_460_984_245_205e2,
        -2.759_285_104_469_687e2,
        1.383_577_518_672_69e2,
        -3.066_479_806_614_716e1,
        2.506_628_277_459_239,
    ];
    const B: [f64; 5] = [
        -5.447_609_879_822_406e1,
        1.615_858_368_580_409e2,
        -1.556_989_798_598_866e2,
        6.680_131_188_771_972e1,
        -1.328_068_155_288_572e1,
    ];
    const C: [f64; 6] = [
        -7.784_894_002_430_293e-3,
        -3.223_964_580_411_365e-1,
        -2.400_758_277_161_838,
        -2.549_732_539_343_734,
        4.374_664_141_464_968,
        2.938_163_982_698_783,
    ];
    const D: [f64; 4] =
        [7.784_695_709_041_462e-3, 3.224_671_290_700_398e-1, 2.445_134_137_142_996, 3.754_408_661_907_416];
    let low = 0.02425;
    let x = if p < low {
        let q = (-2.0 * p.ln()).sqrt();
        (((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    } else if p <= 1.0 - low {
        let q = p - 0.5;
        let r = q * q;
        (((((A[0] * r + A[1]) * r + A[2]) * r + A[3]) * r + A[4]) * r + A[5]) * q
            / (((((B[0] * r + B[1]) * r + B[2]) * r + B[3]) * r + B[4]) * r + 1.0)
    } else {
        let q = (-2.0 * (1.0 - p).ln()).sqrt();
        -(((((C[0] * q + C[1]) * q + C[2]) * q + C[3]) * q + C[4]) * q + C[5])
            / ((((D[0] * q + D[1]) * q + D[2]) * q + D[3]) * q + 1.0)
    };
    // One Halley step on Φ(x) - p = 0.
    let e = cdf(x) - p;
    let u = e * (2.0 * std::f64::consts::PI).sqrt() * (0.5 * x * x).exp();
    x - u / (1.0 + 0.5 * x * u)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cdf_known_values() {
        assert!((cdf(0.0) - 0.5).abs() < 1e-16);
        assert!((cdf(1.959_963_984_540_054) - 0.975).abs() < 1e-14);
        assert!((cdf(-1.0) - 0.158_655_253_931_457_05).abs() < 1e-14);
        assert!((cdf(-8.0) / 6.220_960_574_271_785e-16 - 1.0).abs() < 1e-10);
        assert!((erfc(0.5) - 0.479_500_122_186_953_5).abs() < 1e-15);
        assert!((erfc(2.0) - 4.677_734_981_047_266e-3).abs() < 1e-16);
    }

    #[test]
    fn quantile_inverts_cdf() {
        for p in [1e-10, 0.001, 0.02, 0.1, 0.5, 0.8, 0.95, 0.975, 0.999, 1.0 - 1e-9] {
            let z = quantile(p);
            assert!((cdf(z) - p).abs() <= 1e-12 * p.max(1e-3), "p = {p}");
        }
        assert!((quantile(0.975) - 1.959_963_984_540_054).abs() < 1e-12);
        assert!(quantile(1.5).is_nan());
    }
}
