//! Implicit-feedback ALS (Hu, Koren & Volinsky 2008): minimise
//! Σ_u Σ_i c_ui (p_ui − x_uᵀy_i)² + λ(Σ‖x_u‖² + Σ‖y_i‖²) with p_ui = [r_ui > 0] and confidence
//! c_ui = 1 + α·r_ui, alternating user and item solves. Each solve takes `cg_steps` conjugate-gradient
//! steps warm-started from the previous factors (Takács, Pilászy & Tikk 2011), using
//! YᵀY + Σ_{i∈u}(c_ui − 1) y_i y_iᵀ without ever forming it. f32, parallel over users/items with rayon,
//! AVX2+FMA kernels when the CPU has them, deterministic for a seed (each row is solved independently and
//! YᵀY is summed in a fixed order).

use attune_core::SplitMix64;
use rayon::prelude::*;

use crate::error::{RecsError, invalid};
use crate::kernels::{axpy, dot, has_fma, matvec, score_rows};
use crate::recommender::{Recommender, check_scores_len};
use crate::sparse::{CsrMatrix, Row};

/// ALS hyper-parameters.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct AlsConfig {
    pub factors: usize,
    /// λ, added to YᵀY's diagonal in every solve.
    pub regularization: f32,
    /// α in c = 1 + α·r.
    pub alpha: f32,
    pub iterations: usize,
    pub cg_steps: usize,
    pub seed: u64,
}

impl Default for AlsConfig {
    fn default() -> Self {
        Self { factors: 64, regularization: 0.01, alpha: 1.0, iterations: 15, cg_steps: 3, seed: 42 }
    }
}

/// The factors a fit starts from (row-major, `factors` values per row).
#[derive(Debug, Clone, PartialEq)]
pub struct InitialFactors {
    pub user_factors: Vec<f32>,
    pub item_factors: Vec<f32>,
}

impl AlsConfig {
    /// The random start of a fit on `n_users × n_items` with this config's seed: uniform in [0, 0.01),
    /// items drawn first. Exposed so a peer implementation can be started from the very same factors.
    pub fn initial_factors(&self, n_users: usize, n_items: usize) -> InitialFactors {
        let f = self.factors;
        let mut rng = SplitMix64::new(self.seed);
        let item_factors = (0..n_items * f).map(|_| rng.next_f32() * 0.01).collect();
        let user_factors = (0..n_users * f).map(|_| rng.next_f32() * 0.01).collect();
        InitialFactors { user_factors, item_factors }
    }
}

/// A fitted (or not yet fitted) ALS model: row-major user and item factor matrices.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Als {
    config: AlsConfig,
    n_users: usize,
    n_items: usize,
    user_factors: Vec<f32>,
    item_factors: Vec<f32>,
    /// YᵀY + λI of the final item factors, for folding in unseen users.
    item_gram: Vec<f32>,
}

impl Als {
    pub fn new(config: AlsConfig) -> Result<Self, RecsError> {
        if config.factors == 0 || config.cg_steps == 0 {
            return Err(invalid("factors", "factors and cg_steps must be at least 1"));
        }
        if !(config.regularization.is_finite() && config.regularization >= 0.0) {
            return Err(invalid("regularization", "must be finite and non-negative"));
        }
        if !(config.alpha.is_finite() && config.alpha > 0.0) {
            return Err(invalid("alpha", "must be positive and finite"));
        }
        Ok(Self {
            config,
            n_users: 0,
            n_items: 0,
            user_factors: Vec::new(),
            item_factors: Vec::new(),
            item_gram: Vec::new(),
        })
    }

    pub fn config(&self) -> &AlsConfig {
        &self.config
    }

    /// Row-major `n_users × factors`.
    pub fn user_factors(&self) -> &[f32] {
        &self.user_factors
    }

    /// Row-major `n_items × factors`.
    pub fn item_factors(&self) -> &[f32] {
        &self.item_factors
    }

    /// The model without its user factors, for serving: every shopper is folded in from their live history,
    /// and the stored model holds only the item side.
    pub fn without_users(mut self) -> Self {
        self.n_users = 0;
        self.user_factors = Vec::new();
        self
    }

    /// The item side in new item indices: item `old` becomes `new_of_old[old]`, and items mapped to `None` are
    /// left out (the item Gram matrix is computed again from the items kept). For a model without user
    /// factors; `new_of_old` must be one-to-one onto `0..n_new`.
    pub fn reindex_items(&self, new_of_old: &[Option<u32>], n_new: usize) -> Result<Self, RecsError> {
        let f = self.config.factors;
        if new_of_old.len() != self.n_items || self.n_users != 0 {
            return Err(RecsError::DimensionMismatch(format!(
                "reindexing {} items (and {} users) with {} indices",
                self.n_items,
                self.n_users,
                new_of_old.len()
            )));
        }
        let mut item_factors = vec![0f32; n_new * f];
        for (old, new) in new_of_old.iter().enumerate() {
            let Some(new) = *new else { continue };
            let new = new as usize;
            if new >= n_new {
                return Err(RecsError::DimensionMismatch(format!("index {new} ≥ {n_new}")));
            }
            item_factors[new * f..(new + 1) * f].copy_from_slice(&self.item_factors[old * f..(old + 1) * f]);
        }
        let item_gram = gram(&item_factors, f, self.config.regularization);
        Ok(Self {
            config: self.config.clone(),
            n_users: 0,
            n_items: n_new,
            user_factors: Vec::new(),
            item_factors,
            item_gram,
        })
    }

    /// Dot product of two items' factors: how alike the model finds them.
    pub fn item_similarity(&self, a: u32, b: u32) -> f32 {
        let f = self.config.factors;
        let (a, b) = (a as usize, b as usize);
        if a >= self.n_items || b >= self.n_items {
            return 0.0;
        }
        dot::<false>(&self.item_factors[a * f..(a + 1) * f], &self.item_factors[b * f..(b + 1) * f])
    }

    /// Fits and returns the training loss after each iteration (for monitoring and tests).
    pub fn fit_with_losses(&mut self, train: &CsrMatrix) -> Result<Vec<f64>, RecsError> {
        self.fit_inner(train, true)
    }

    /// The objective on `train` at the current factors.
    pub fn loss(&self, train: &CsrMatrix) -> f64 {
        let f = self.config.factors;
        let gram = gram(&self.item_factors, f, 0.0);
        let lam = f64::from(self.config.regularization);
        let mut tmp = vec![0f32; f];
        let mut total = 0f64;
        for u in 0..train.n_rows() {
            let x = &self.user_factors[u * f..(u + 1) * f];
            matvec::<false>(&gram, x, &mut tmp);
            total += f64::from(dot::<false>(x, &tmp));
            for (i, r) in train.row(u).iter() {
                let s = f64::from(dot::<false>(x, &self.item_factors[i as usize * f..(i as usize + 1) * f]));
                let c = 1.0 + f64::from(self.config.alpha) * f64::from(r);
                total += c * (1.0 - s) * (1.0 - s) - s * s;
            }
        }
        let norms = |v: &[f32]| v.iter().map(|&a| f64::from(a) * f64::from(a)).sum::<f64>();
        total + lam * (norms(&self.user_factors) + norms(&self.item_factors))
    }

    fn fit_inner(&mut self, train: &CsrMatrix, track_loss: bool) -> Result<Vec<f64>, RecsError> {
        if train.nnz() == 0 {
            return Err(RecsError::EmptyData("no interactions".into()));
        }
        let f = self.config.factors;
        let (n_users, n_items) = (train.n_rows(), train.n_cols());
        let start = self.config.initial_factors(n_users, n_items);
        self.item_factors = start.item_factors;
        self.user_factors = start.user_factors;
        self.n_users = n_users;
        self.n_items = n_items;
        let by_item = train.transpose();
        let mut losses = Vec::new();
        for _ in 0..self.config.iterations {
            let g = gram(&self.item_factors, f, self.config.regularization);
            solve_all(&mut self.user_factors, train, &self.item_factors, &g, &self.config);
            let g = gram(&self.user_factors, f, self.config.regularization);
            solve_all(&mut self.item_factors, &by_item, &self.user_factors, &g, &self.config);
            if track_loss {
                losses.push(self.loss(train));
            }
        }
        self.item_gram = gram(&self.item_factors, f, self.config.regularization);
        Ok(losses)
    }
}

impl Recommender for Als {
    fn name(&self) -> String {
        let c = &self.config;
        format!("ALS(f={}, λ={}, α={}, it={})", c.factors, c.regularization, c.alpha, c.iterations)
    }

    fn fit(&mut self, train: &CsrMatrix) -> Result<(), RecsError> {
        self.fit_inner(train, false).map(|_| ())
    }

    fn n_items(&self) -> usize {
        self.n_items
    }

    /// Known users use their learned vector; others are folded in from `history` (a least-squares solve
    /// against the fixed item factors).
    fn score_into(&self, user: u32, history: Row<'_>, scores: &mut [f32]) -> Result<(), RecsError> {
        check_scores_len(scores, self.n_items)?;
        if self.item_factors.is_empty() {
            return Err(RecsError::NotFitted("als"));
        }
        let f = self.config.factors;
        let u = user as usize;
        if u < self.n_users {
            score_rows(&self.user_factors[u * f..(u + 1) * f], &self.item_factors, scores);
        } else {
            let mut x = vec![0f32; f];
            let mut cfg = self.config.clone();
            cfg.cg_steps = f.max(cfg.cg_steps);
            cg_block::<false>(&mut x, |_| history, &self.item_factors, &self.item_gram, &cfg);
            score_rows(&x, &self.item_factors, scores);
        }
        Ok(())
    }
}

/// YᵀY + λI (row-major f × f), summed over fixed chunks of rows in a fixed order (deterministic).
fn gram(y: &[f32], f: usize, reg: f32) -> Vec<f32> {
    const CHUNK: usize = 2048;
    let partials: Vec<Vec<f32>> = y
        .par_chunks(CHUNK * f)
        .map(|rows| {
            let mut g = vec![0f32; f * f];
            for row in rows.chunks_exact(f) {
                for (a, &ra) in row.iter().enumerate() {
                    axpy::<false>(ra, row, &mut g[a * f..(a + 1) * f]);
                }
            }
            g
        })
        .collect();
    let mut g = vec![0f32; f * f];
    for p in &partials {
        for (a, b) in g.iter_mut().zip(p) {
            *a += b;
        }
    }
    for d in 0..f {
        g[d * f + d] += reg;
    }
    g
}

/// `out = rows · gram` for `n` row-major rows of length `f` (gram is symmetric, so row k of the result is
/// `gram · row_k`): one small matrix product instead of `n` matrix-vector products.
fn rows_times_gram(rows: &[f32], gram: &[f32], out: &mut [f32], n: usize, f: usize) {
    debug_assert!(rows.len() >= n * f && out.len() >= n * f && gram.len() == f * f);
    // SAFETY: `rows` and `out` hold at least n × f row-major values and `gram` f × f (asserted above in
    // debug builds, guaranteed by the callers); `out` does not overlap the inputs.
    unsafe {
        gemm::gemm(
            n,
            f,
            f,
            out.as_mut_ptr(),
            1,
            f as isize,
            false,
            rows.as_ptr(),
            1,
            f as isize,
            gram.as_ptr(),
            1,
            f as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

/// Per-chunk conjugate-gradient state: residuals, directions and A·p for every row of the chunk.
struct BlockScratch {
    r: Vec<f32>,
    p: Vec<f32>,
    ap: Vec<f32>,
    rs_old: Vec<f32>,
    active: Vec<bool>,
}

impl BlockScratch {
    fn new(rows: usize, f: usize) -> Self {
        Self {
            r: vec![0.0; rows * f],
            p: vec![0.0; rows * f],
            ap: vec![0.0; rows * f],
            rs_old: vec![0.0; rows],
            active: vec![false; rows],
        }
    }
}

/// Rows solved together: the YᵀY products of a block are one matrix product.
const BLOCK_ROWS: usize = 64;

/// Solves every row of `x` (rows of `matrix`) against the fixed `y`, in parallel blocks of rows.
fn solve_all(x: &mut [f32], matrix: &CsrMatrix, y: &[f32], gram: &[f32], cfg: &AlsConfig) {
    let f = cfg.factors;
    let fma = has_fma();
    x.par_chunks_mut(BLOCK_ROWS * f).enumerate().for_each(|(chunk, xs)| {
        let first = chunk * BLOCK_ROWS;
        solve_chunk(fma, xs, first, matrix, y, gram, cfg);
    });
}

fn solve_chunk(fma: bool, xs: &mut [f32], first: usize, matrix: &CsrMatrix, y: &[f32], gram: &[f32], cfg: &AlsConfig) {
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn run_fma(xs: &mut [f32], first: usize, matrix: &CsrMatrix, y: &[f32], gram: &[f32], cfg: &AlsConfig) {
            cg_block::<true>(xs, |k| matrix.row(first + k), y, gram, cfg)
        }
        if fma {
            // SAFETY: `fma` is true only when the CPU has AVX2 and FMA.
            unsafe { run_fma(xs, first, matrix, y, gram, cfg) };
            return;
        }
    }
    let _ = fma;
    cg_block::<false>(xs, |k| matrix.row(first + k), y, gram, cfg)
}

/// `cg_steps` conjugate-gradient steps, for every row `k` of the block `xs` (interactions `row_of(k)`), on
/// (YᵀY + λI + Σ_i (c_ki − 1) y_i y_iᵀ) x_k = Σ_i c_ki y_i, warm-started from `xs`. The rows advance in
/// lockstep so each step's YᵀY products are one matrix product; a row that has converged stops changing.
#[inline(always)]
fn cg_block<'m, const FMA: bool>(
    xs: &mut [f32],
    row_of: impl Fn(usize) -> Row<'m>,
    y: &[f32],
    gram: &[f32],
    cfg: &AlsConfig,
) {
    let f = cfg.factors;
    let n = xs.len() / f;
    let alpha = cfg.alpha;
    let item = |i: u32| &y[i as usize * f..(i as usize + 1) * f];
    let mut s = BlockScratch::new(n, f);
    // r = b − A x
    rows_times_gram(xs, gram, &mut s.r, n, f);
    for k in 0..n {
        let x = &xs[k * f..(k + 1) * f];
        let r = &mut s.r[k * f..(k + 1) * f];
        r.iter_mut().for_each(|v| *v = -*v);
        for (i, v) in row_of(k).iter() {
            let yi = item(i);
            let cm1 = alpha * v;
            let coef = (1.0 + cm1) - cm1 * dot::<FMA>(yi, x);
            axpy::<FMA>(coef, yi, r);
        }
        s.rs_old[k] = dot::<FMA>(r, r);
        s.active[k] = s.rs_old[k] >= 1e-20;
    }
    s.p.copy_from_slice(&s.r);
    for _ in 0..cfg.cg_steps {
        if !s.active.iter().any(|a| *a) {
            break;
        }
        rows_times_gram(&s.p, gram, &mut s.ap, n, f);
        for k in 0..n {
            if !s.active[k] {
                continue;
            }
            let range = k * f..(k + 1) * f;
            let p = &mut s.p[range.clone()];
            let ap = &mut s.ap[range.clone()];
            for (i, v) in row_of(k).iter() {
                let yi = item(i);
                let coef = alpha * v * dot::<FMA>(yi, p);
                axpy::<FMA>(coef, yi, ap);
            }
            let pap = dot::<FMA>(p, ap);
            if pap <= 0.0 || !pap.is_finite() {
                s.active[k] = false;
                continue;
            }
            let step = s.rs_old[k] / pap;
            axpy::<FMA>(step, p, &mut xs[range.clone()]);
            let r = &mut s.r[range];
            axpy::<FMA>(-step, ap, r);
            let rs_new = dot::<FMA>(r, r);
            if rs_new < 1e-20 {
                s.active[k] = false;
                continue;
            }
            let beta = rs_new / s.rs_old[k];
            for (p, r) in p.iter_mut().zip(r.iter()) {
                *p = r + beta * *p;
            }
            s.rs_old[k] = rs_new;
        }
    }
}
