//! Element-wise maths for the encoder's hot loops, written branch-free so the compiler vectorises them: GELU with
//! an erf accurate to ~1.5e-7, and layer normalisation of one row.

use std::f32::consts::{FRAC_1_SQRT_2, LN_2, LOG2_E};

/// `ln 2` split in a part with few mantissa bits (exact when multiplied by a small integer) and the remainder.
const LN_2_HIGH: f32 = 0.693_145_75;
const LN_2_LOW: f32 = LN_2 - LN_2_HIGH;

/// `e^y` for `y <= 0` (relative error about 1e-7); inputs below -87 give `e^-87` (about 1.6e-38) instead of a
/// subnormal.
#[inline(always)]
pub(crate) fn exp_non_positive(y: f32) -> f32 {
    let y = y.max(-87.0);
    // Round y / ln2 to the nearest integer n (truncation of a non-positive value rounds up, hence -0.5).
    let n = (y * LOG2_E - 0.5) as i32;
    let nf = n as f32;
    let r = (y - nf * LN_2_HIGH) - nf * LN_2_LOW; // |r| <= ln2 / 2
    // Taylor series of e^r to degree 7: truncation error below 6e-9 on |r| <= 0.35.
    let poly = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let two_to_n = f32::from_bits(((n + 127) as u32) << 23); // n in [-126, 0]: a normal float
    poly * two_to_n
}

/// The error function, by Abramowitz & Stegun's formula 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t * (0.254_829_6 + t * (-0.284_496_74 + t * (1.421_413_8 + t * (-1.453_152 + t * 1.061_405_4))));
    let magnitude = 1.0 - poly * exp_non_positive(-a * a);
    magnitude.copysign(x)
}

/// GELU with the exact (erf) form that BERT uses: `x/2 * (1 + erf(x / sqrt 2))`.
#[inline(always)]
pub(crate) fn gelu(x: f32) -> f32 {
    0.5 * x * (1.0 + erf(x * FRAC_1_SQRT_2))
}

/// `row <- gelu(row + bias)`, compiled for the widest vector instructions the CPU has (AVX-512, AVX2 + FMA, or
/// the baseline) and chosen at run time, so the binary stays portable.
pub(crate) fn bias_gelu_row(row: &mut [f32], bias: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            // SAFETY: the CPU has AVX-512F, checked just above.
            return unsafe { bias_gelu_row_avx512(row, bias) };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            return unsafe { bias_gelu_row_avx2(row, bias) };
        }
    }
    bias_gelu_row_portable(row, bias);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn bias_gelu_row_avx512(row: &mut [f32], bias: &[f32]) {
    bias_gelu_row_portable(row, bias);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn bias_gelu_row_avx2(row: &mut [f32], bias: &[f32]) {
    bias_gelu_row_portable(row, bias);
}

#[inline(always)]
fn bias_gelu_row_portable(row: &mut [f32], bias: &[f32]) {
    row.iter_mut().zip(bias).for_each(|(x, b)| *x = gelu(*x + b));
}

/// Sum of a slice with eight running totals, so that the loop vectorises.
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let chunks = values.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for chunk in chunks {
        for (lane, value) in lanes.iter_mut().zip(chunk) {
            *lane += value;
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Normalises `row` in place to zero mean and unit variance, then scales by `gamma` and shifts by `beta`.
#[inline(always)]
pub(crate) fn layer_norm_in_place(row: &mut [f32], gamma: &[f32], beta: &[f32], eps: f32) {
    let count = row.len() as f32;
    let mean = sum(row) / count;
    row.iter_mut().for_each(|value| *value -= mean);
    let mut squares = [0.0f32; 8];
    let chunks = row.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|v| v * v).sum();
    for chunk in chunks {
        for (lane, value) in squares.iter_mut().zip(chunk) {
            *lane += value * value;
        }
    }
    let variance = (squares.iter().sum::<f32>() + tail) / count;
    let inverse_std = 1.0 / (variance + eps).sqrt();
    for ((value, g), b) in row.iter_mut().zip(gamma).zip(beta) {
        *value = *value * inverse_std * g + b;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std_on_its_range() {
        for i in 0..=20_000 {
            let y = -(i as f32) * 0.005; // 0 .. -100
            let expected = (y.max(-87.0) as f64).exp();
            let relative = ((exp_non_positive(y) as f64 - expected) / expected).abs();
            assert!(relative < 4e-7, "exp({y}): relative error {relative}");
        }
    }

    #[test]
    fn erf_is_accurate_to_two_tenths_of_a_millionth() {
        // Reference values of erf (rounded to 10 decimals).
        let table: [(f32, f64); 8] = [
            (0.0, 0.0),
            (0.1, 0.1124629160),
            (0.5, 0.5204998778),
            (1.0, 0.8427007929),
            (1.5, 0.9661051465),
            (2.0, 0.9953222650),
            (3.0, 0.9999779095),
            (5.0, 1.0),
        ];
        for (x, expected) in table {
            assert!((f64::from(erf(x)) - expected).abs() < 2e-7, "erf({x}) = {}, expected {expected}", erf(x));
            assert!((f64::from(erf(-x)) + expected).abs() < 2e-7, "erf is odd");
        }
    }

    #[test]
    fn gelu_known_values() {
        assert_eq!(gelu(0.0), 0.0);
        assert!((gelu(1.0) - 0.841_344_7).abs() < 1e-6);
        assert!((gelu(-1.0) + 0.158_655_25).abs() < 1e-6);
        assert!((gelu(10.0) - 10.0).abs() < 1e-5);
        assert!(gelu(-10.0).abs() < 1e-5);
    }

    #[test]
    fn every_bias_gelu_variant_agrees() {
        let bias: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.01).collect();
        let input: Vec<f32> = (0..100).map(|i| (i as f32 - 50.0) * 0.13).collect();
        let mut expected = input.clone();
        bias_gelu_row_portable(&mut expected, &bias);
        let mut variants = vec![input.clone()];
        bias_gelu_row(&mut variants[0], &bias);
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
            let mut avx2 = input.clone();
            // SAFETY: the CPU has AVX2 and FMA, checked just above.
            unsafe { bias_gelu_row_avx2(&mut avx2, &bias) };
            variants.push(avx2);
        }
        for variant in &variants {
            for ((e, v), (x, b)) in expected.iter().zip(variant).zip(input.iter().zip(&bias)) {
                assert!((e - v).abs() < 1e-6, "gelu({}) differs between instruction sets: {e} vs {v}", x + b);
            }
        }
    }

    #[test]
    fn layer_norm_of_a_row() {
        let mut row: Vec<f32> = (0..20).map(|i| i as f32).collect();
        let gamma = vec![2.0; 20];
        let beta = vec![1.0; 20];
        layer_norm_in_place(&mut row, &gamma, &beta, 1e-12);
        let mean = row.iter().sum::<f32>() / 20.0;
        let variance = row.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / 20.0;
        assert!((mean - 1.0).abs() < 1e-5, "shifted by beta: {mean}");
        assert!((variance - 4.0).abs() < 1e-4, "scaled by gamma: {variance}");
    }
}
