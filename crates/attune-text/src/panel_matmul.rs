//! `x · Wᵀ` for the few rows of one search query (a sentence of about ten tokens). gemm's blocking is made for
//! large matrices: with a dozen rows it spends the forward pass waiting on weights that no longer sit in cache.
//! Here each dense layer's weights are kept once more, in half precision, as panels of [`PANEL`] output columns
//! with their inputs contiguous: one pass streams every weight once, in order, at half the bytes of f32, while up
//! to [`ROWS_PER_PASS`] rows accumulate in f32 registers; the panels are split over the cores. Half precision
//! rounds a weight by at most 2⁻¹¹ of itself; the embedding tests hold the result to the reference vectors.

use half::f16;
use rayon::prelude::*;

/// Output columns per panel: one 256-bit register of f32.
pub(crate) const PANEL: usize = 8;
/// Rows multiplied per pass over a panel: 12 accumulators, the panel row and a broadcast fit AVX2's 16 registers.
const ROWS_PER_PASS: usize = 12;
/// Panels per parallel task: below this, scheduling costs more than it saves.
const MIN_PANELS_PER_TASK: usize = 8;

/// A dense layer's weights as half-precision panels: panel `p` holds `W[p·8 + l][i]` at `(i · 8 + l)` (columns
/// past the last output are zero).
pub(crate) struct PanelWeights {
    inputs: usize,
    outputs: usize,
    panels: Vec<f16>,
}

impl PanelWeights {
    /// From `Wᵀ` as a row-major `[inputs, outputs]` slice.
    pub(crate) fn from_transposed(weight_t: &[f32], inputs: usize, outputs: usize) -> Self {
        assert_eq!(weight_t.len(), inputs * outputs, "weights of {inputs} x {outputs}");
        let panel_count = outputs.div_ceil(PANEL);
        let mut panels = vec![f16::ZERO; panel_count * inputs * PANEL];
        for (panel_index, panel) in panels.chunks_exact_mut(inputs * PANEL).enumerate() {
            for (input, lanes) in panel.chunks_exact_mut(PANEL).enumerate() {
                for (lane, value) in lanes.iter_mut().enumerate() {
                    let output = panel_index * PANEL + lane;
                    if output < outputs {
                        *value = f16::from_f32(weight_t[input * outputs + output]);
                    }
                }
            }
        }
        Self { inputs, outputs, panels }
    }

    pub(crate) fn outputs(&self) -> usize {
        self.outputs
    }

    /// `x · Wᵀ` for a row-major `[rows, inputs]` `x`: a row-major `[rows, outputs]` result.
    pub(crate) fn multiply(&self, x: &[f32], rows: usize) -> Vec<f32> {
        assert_eq!(x.len(), rows * self.inputs, "{rows} rows of {} inputs", self.inputs);
        let inputs = self.inputs;
        // Rows in passes of at most ROWS_PER_PASS, each pass's values input-major (`[input][row]`), so the
        // kernel reads the rows' values for one input side by side.
        let passes: Vec<(usize, Vec<f32>)> = x
            .chunks(ROWS_PER_PASS * inputs.max(1))
            .map(|pass| {
                let pass_rows = pass.len() / inputs.max(1);
                let mut by_input = vec![0.0f32; pass.len()];
                for (row, values) in pass.chunks_exact(inputs.max(1)).enumerate() {
                    for (input, value) in values.iter().enumerate() {
                        by_input[input * pass_rows + row] = *value;
                    }
                }
                (pass_rows, by_input)
            })
            .collect();
        let panel_count = self.outputs.div_ceil(PANEL);
        // Per panel its rows' lanes, `[panel][row][lane]`, so every task writes one contiguous block.
        let mut by_panel = vec![0.0f32; panel_count * rows * PANEL];
        if rows > 0 {
            by_panel.par_chunks_mut(rows * PANEL).with_min_len(MIN_PANELS_PER_TASK).enumerate().for_each(
                |(panel_index, out)| {
                    let panel = &self.panels[panel_index * inputs * PANEL..][..inputs * PANEL];
                    for ((pass_rows, by_input), out_rows) in passes.iter().zip(out.chunks_mut(ROWS_PER_PASS * PANEL)) {
                        multiply_panel(by_input, *pass_rows, panel, out_rows);
                    }
                },
            );
        }
        let mut output = vec![0.0f32; rows * self.outputs];
        for (panel_index, block) in by_panel.chunks_exact(rows.max(1) * PANEL).enumerate().take(panel_count) {
            let first = panel_index * PANEL;
            let width = PANEL.min(self.outputs - first);
            for (row, lanes) in block.chunks_exact(PANEL).enumerate() {
                output[row * self.outputs + first..][..width].copy_from_slice(&lanes[..width]);
            }
        }
        output
    }
}

/// `out[r][l] = Σ_i x[i][r] · panel[i][l]` for the `rows` (at most [`ROWS_PER_PASS`]) rows of an input-major
/// `x`.
fn multiply_panel(x: &[f32], rows: usize, panel: &[f16], out: &mut [f32]) {
    debug_assert!(rows <= ROWS_PER_PASS && out.len() == rows * PANEL && x.len() * PANEL == panel.len() * rows);
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma_f16c() {
        // SAFETY: the CPU has AVX2, FMA and F16C, checked just above.
        return unsafe { multiply_panel_avx2(x, rows, panel, out) };
    }
    let (weights, _) = panel.as_chunks::<PANEL>();
    for (row, out_row) in out.chunks_exact_mut(PANEL).enumerate() {
        let mut lanes = [0.0f32; PANEL];
        for (values, weights) in x.chunks_exact(rows).zip(weights) {
            for (lane, weight) in lanes.iter_mut().zip(weights) {
                *lane += values[row] * weight.to_f32();
            }
        }
        out_row.copy_from_slice(&lanes);
    }
}

#[cfg(target_arch = "x86_64")]
fn has_avx2_fma_f16c() -> bool {
    static DETECTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *DETECTED.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2")
            && std::arch::is_x86_feature_detected!("fma")
            && std::arch::is_x86_feature_detected!("f16c")
    })
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
fn multiply_panel_avx2(x: &[f32], rows: usize, panel: &[f16], out: &mut [f32]) {
    macro_rules! with_rows {
        ($($count:literal)*) => {
            match rows {
                $($count => rows_avx2::<$count>(x, panel, out),)*
                _ => unreachable!("at most {ROWS_PER_PASS} rows per pass"),
            }
        };
    }
    with_rows!(1 2 3 4 5 6 7 8 9 10 11 12);
}

/// One pass over a panel for exactly `R` rows, their accumulators in registers.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
#[inline]
fn rows_avx2<const R: usize>(x: &[f32], panel: &[f16], out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (values, _) = x.as_chunks::<R>();
    let (weights, _) = panel.as_chunks::<PANEL>();
    let mut sums = [_mm256_setzero_ps(); R];
    for (values, weights) in values.iter().zip(weights) {
        // SAFETY: `weights` is an array of 8 halves (16 bytes); the load is unaligned.
        let weights = _mm256_cvtph_ps(unsafe { _mm_loadu_si128(weights.as_ptr().cast()) });
        for (sum, value) in sums.iter_mut().zip(values) {
            *sum = _mm256_fmadd_ps(_mm256_set1_ps(*value), weights, *sum);
        }
    }
    for (sum, lanes) in sums.iter().zip(out.as_chunks_mut::<PANEL>().0) {
        // SAFETY: `lanes` is an array of 8 floats; the store is unaligned.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), *sum) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(x: &[f32], rows: usize, weight_t: &[f32], inputs: usize, outputs: usize) -> Vec<f32> {
        let mut out = vec![0.0f64; rows * outputs];
        for r in 0..rows {
            for i in 0..inputs {
                for o in 0..outputs {
                    out[r * outputs + o] += f64::from(x[r * inputs + i]) * f64::from(weight_t[i * outputs + o]);
                }
            }
        }
        out.into_iter().map(|v| v as f32).collect()
    }

    #[test]
    fn matches_a_plain_product_for_every_row_count_and_ragged_outputs() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let mut next = move || rng.random_range(-0.5f32..0.5);
        for (inputs, outputs) in [(384, 1152), (37, 13), (5, 8), (16, 1)] {
            let weight_t: Vec<f32> = (0..inputs * outputs).map(|_| next()).collect();
            let weights = PanelWeights::from_transposed(&weight_t, inputs, outputs);
            for rows in [0, 1, 2, 11, 12, 13, 25, 40] {
                let x: Vec<f32> = (0..rows * inputs).map(|_| next()).collect();
                let got = weights.multiply(&x, rows);
                let want = reference(&x, rows, &weight_t, inputs, outputs);
                let largest_x = x.iter().fold(0.0f32, |m, v| m.max(v.abs()));
                let bound = 1e-5 + inputs as f32 * 0.5 * largest_x * 2f32.powi(-11);
                assert_eq!(got.len(), want.len());
                for (g, w) in got.iter().zip(&want) {
                    // Each weight is rounded to half precision (relative error at most 2^-11).
                    assert!((g - w).abs() <= bound, "{inputs}x{outputs}, {rows} rows: {g} vs {w}");
                }
            }
        }
    }
}
