//! EASE (Steck 2019, "Embarrassingly Shallow Autoencoders"): an item × item weight matrix with zero
//! diagonal in closed form, B = I − P·diag(1/diag(P)) with P = (XᵀX + λI)⁻¹; a user's scores are x_u·B.
//!
//! The inverse is dense (items² f32): an in-place blocked Gauss–Jordan sweep (no pivoting is needed: the
//! matrix is symmetric positive definite) whose rank-b updates run through the `gemm` crate. Cost grows
//! with the cube of the catalog, so only the `max_items` most popular items (by number of users) take
//! part; the others score −∞ and are never recommended. Amazon Beauty's 12,101 items take 20–45 s on two
//! cores (λ-dependent) and ~0.6 GB for the matrix (P is overwritten by B).

use crate::error::{RecsError, invalid};
use crate::recommender::{Recommender, check_scores_len};
use crate::sparse::{CsrMatrix, Row};

/// EASE hyper-parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct EaseConfig {
    /// L2 regularization λ added to the Gram matrix's diagonal.
    pub lambda: f32,
    /// At most this many (most popular) items take part.
    pub max_items: usize,
}

impl Default for EaseConfig {
    fn default() -> Self {
        Self { lambda: 500.0, max_items: 15_000 }
    }
}

/// A fitted (or not yet fitted) EASE model.
#[derive(Debug, Clone)]
pub struct Ease {
    config: EaseConfig,
    n_items: usize,
    /// Global item index → position among the modelled items.
    local: Vec<Option<u32>>,
    /// Modelled items' global indices, increasing.
    global: Vec<u32>,
    /// Row-major m × m weights B (m = modelled items).
    weights: Vec<f32>,
}

impl Ease {
    pub fn new(config: EaseConfig) -> Result<Self, RecsError> {
        if !(config.lambda.is_finite() && config.lambda > 0.0) {
            return Err(invalid("lambda", "must be positive and finite"));
        }
        if config.max_items == 0 {
            return Err(invalid("max_items", "must be at least 1"));
        }
        Ok(Self { config, n_items: 0, local: Vec::new(), global: Vec::new(), weights: Vec::new() })
    }

    /// The learned weight B[i][j] between global items (0 when either is not modelled).
    pub fn weight(&self, i: u32, j: u32) -> f32 {
        match (self.local.get(i as usize).copied().flatten(), self.local.get(j as usize).copied().flatten()) {
            (Some(a), Some(b)) => self.weights[a as usize * self.global.len() + b as usize],
            _ => 0.0,
        }
    }

    /// The global indices of the modelled items (increasing): every item with an interaction, or the
    /// `max_items` most popular.
    pub fn modelled(&self) -> &[u32] {
        &self.global
    }
}

impl Recommender for Ease {
    fn name(&self) -> String {
        format!("EASE(λ={})", self.config.lambda)
    }

    fn fit(&mut self, train: &CsrMatrix) -> Result<(), RecsError> {
        let n_items = train.n_cols();
        let counts = train.column_counts();
        let mut order: Vec<u32> = (0..n_items as u32).filter(|&i| counts[i as usize] > 0).collect();
        if order.is_empty() {
            return Err(RecsError::EmptyData("no item has an interaction".into()));
        }
        if order.len() > self.config.max_items {
            order.sort_by(|a, b| counts[*b as usize].cmp(&counts[*a as usize]).then(a.cmp(b)));
            order.truncate(self.config.max_items);
            order.sort_unstable();
        }
        let m = order.len();
        let mut local = vec![None; n_items];
        for (p, &g) in order.iter().enumerate() {
            local[g as usize] = Some(p as u32);
        }
        let mut gram = vec![0f32; m * m];
        let mut pairs: Vec<(usize, f32)> = Vec::new();
        for u in 0..train.n_rows() {
            pairs.clear();
            pairs.extend(train.row(u).iter().filter_map(|(i, v)| local[i as usize].map(|p| (p as usize, v))));
            for &(a, va) in &pairs {
                let row = &mut gram[a * m..(a + 1) * m];
                for &(b, vb) in &pairs {
                    row[b] += va * vb;
                }
            }
        }
        for d in 0..m {
            gram[d * m + d] += self.config.lambda;
        }
        invert_spd_in_place(&mut gram, m)?;
        // B = I − P / diag(P) (column j divided by P_jj), diagonal forced to zero.
        let diag: Vec<f32> = (0..m).map(|d| gram[d * m + d]).collect();
        for i in 0..m {
            let row = &mut gram[i * m..(i + 1) * m];
            for (j, w) in row.iter_mut().enumerate() {
                *w = if i == j { 0.0 } else { -*w / diag[j] };
            }
        }
        self.n_items = n_items;
        self.local = local;
        self.global = order;
        self.weights = gram;
        Ok(())
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    fn score_into(&self, _user: u32, history: Row<'_>, scores: &mut [f32]) -> Result<(), RecsError> {
        check_scores_len(scores, self.n_items)?;
        if self.weights.is_empty() {
            return Err(RecsError::NotFitted("ease"));
        }
        let m = self.global.len();
        let mut local_scores = vec![0f32; m];
        for (i, x) in history.iter() {
            if let Some(a) = self.local.get(i as usize).copied().flatten() {
                let row = &self.weights[a as usize * m..(a as usize + 1) * m];
                for (s, w) in local_scores.iter_mut().zip(row) {
                    *s += x * w;
                }
            }
        }
        scores.fill(f32::NEG_INFINITY);
        for (&g, &s) in self.global.iter().zip(&local_scores) {
            scores[g as usize] = s;
        }
        Ok(())
    }
}

const BLOCK: usize = 192;

/// Inverts the row-major symmetric positive-definite `n × n` matrix `a` in place (blocked Gauss–Jordan).
pub fn invert_spd_in_place(a: &mut [f32], n: usize) -> Result<(), RecsError> {
    if a.len() != n * n {
        return Err(RecsError::DimensionMismatch(format!("{} values for a {n}×{n} matrix", a.len())));
    }
    let threads = rayon::current_num_threads();
    let parallelism = if n >= 512 { gemm::Parallelism::Rayon(threads) } else { gemm::Parallelism::None };
    let mut k0 = 0;
    while k0 < n {
        let kb = BLOCK.min(n - k0);
        // Pivot block inverse, in f64.
        let mut piv = vec![0f64; kb * kb];
        for r in 0..kb {
            for c in 0..kb {
                piv[r * kb + c] = f64::from(a[(k0 + r) * n + k0 + c]);
            }
        }
        invert_small(&mut piv, kb)?;
        let piv32: Vec<f32> = piv.iter().map(|&v| v as f32).collect();
        // C = A[:, k-block] (n × kb), R = A[k-block, :] (kb × n).
        let mut c_blk = vec![0f32; n * kb];
        for i in 0..n {
            c_blk[i * kb..(i + 1) * kb].copy_from_slice(&a[i * n + k0..i * n + k0 + kb]);
        }
        let r_blk: Vec<f32> = a[k0 * n..(k0 + kb) * n].to_vec();
        // R' = P · R
        let mut r_new = vec![0f32; kb * n];
        // CP = C · P
        let mut cp = vec![0f32; n * kb];
        // SAFETY: every pointer addresses a live buffer of exactly the row-major shape passed with it,
        // and the destinations do not overlap the sources.
        unsafe {
            gemm::gemm(
                kb,
                n,
                kb,
                r_new.as_mut_ptr(),
                1,
                n as isize,
                false,
                piv32.as_ptr(),
                1,
                kb as isize,
                r_blk.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
            gemm::gemm(
                n,
                kb,
                kb,
                cp.as_mut_ptr(),
                1,
                kb as isize,
                false,
                c_blk.as_ptr(),
                1,
                kb as isize,
                piv32.as_ptr(),
                1,
                kb as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
            // A ← A − C · R'
            gemm::gemm(
                n,
                n,
                kb,
                a.as_mut_ptr(),
                1,
                n as isize,
                true,
                c_blk.as_ptr(),
                1,
                kb as isize,
                r_new.as_ptr(),
                1,
                n as isize,
                1.0,
                -1.0,
                false,
                false,
                false,
                parallelism,
            );
        }
        for r in 0..kb {
            a[(k0 + r) * n..(k0 + r + 1) * n].copy_from_slice(&r_new[r * n..(r + 1) * n]);
        }
        for i in 0..n {
            if i >= k0 && i < k0 + kb {
                continue;
            }
            for c in 0..kb {
                a[i * n + k0 + c] = -cp[i * kb + c];
            }
        }
        for r in 0..kb {
            a[(k0 + r) * n + k0..(k0 + r) * n + k0 + kb].copy_from_slice(&piv32[r * kb..(r + 1) * kb]);
        }
        k0 += kb;
    }
    if a.iter().any(|v| !v.is_finite()) {
        return Err(RecsError::Numerical("matrix inverse produced non-finite values".into()));
    }
    Ok(())
}

/// Unblocked Gauss–Jordan sweep of a small SPD matrix (f64, in place).
fn invert_small(p: &mut [f64], n: usize) -> Result<(), RecsError> {
    for k in 0..n {
        let pivot = p[k * n + k];
        if !(pivot > 0.0 && pivot.is_finite()) {
            return Err(RecsError::Numerical(format!("matrix is not positive definite (pivot {pivot})")));
        }
        let inv = 1.0 / pivot;
        for j in 0..n {
            if j != k {
                p[k * n + j] *= inv;
            }
        }
        for i in 0..n {
            if i == k {
                continue;
            }
            let f = p[i * n + k];
            if f == 0.0 {
                continue;
            }
            for j in 0..n {
                if j != k {
                    p[i * n + j] -= f * p[k * n + j];
                }
            }
            p[i * n + k] = -f * inv;
        }
        p[k * n + k] = inv;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocked_inverse_matches_identity() {
        let n = 2 * BLOCK + 17;
        let mut a = vec![0f32; n * n];
        for i in 0..n {
            for j in 0..n {
                a[i * n + j] = ((i * 7 + j * 7 + i * j) % 11) as f32 * 0.01 + if i == j { n as f32 * 0.2 } else { 0.0 };
            }
        }
        // Symmetrize.
        for i in 0..n {
            for j in 0..i {
                a[i * n + j] = a[j * n + i];
            }
        }
        let orig = a.clone();
        invert_spd_in_place(&mut a, n).unwrap();
        for i in (0..n).step_by(37) {
            for j in 0..n {
                let v: f64 = (0..n).map(|k| f64::from(orig[i * n + k]) * f64::from(a[k * n + j])).sum();
                let want = if i == j { 1.0 } else { 0.0 };
                assert!((v - want).abs() < 1e-4, "({i},{j}) = {v}");
            }
        }
    }
}
