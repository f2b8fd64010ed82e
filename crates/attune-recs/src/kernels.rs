//! Small dense f32 kernels (dot, axpy, mat-vec) written so LLVM vectorizes them, in two flavours chosen
//! at run time: plain, and fused multiply-add under AVX2+FMA (`FMA = true`, only ever called from
//! functions compiled with those target features).

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

const LANES: usize = 16;

#[inline(always)]
pub(crate) fn dot<const FMA: bool>(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    if FMA {
        // SAFETY: the FMA flavour is only ever called from functions compiled with AVX2 and FMA (module doc).
        return unsafe { dot_avx2_fma(a, b) };
    }
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0f32; LANES];
    let mut ca = a.chunks_exact(LANES);
    let mut cb = b.chunks_exact(LANES);
    for (x, y) in (&mut ca).zip(&mut cb) {
        for l in 0..LANES {
            acc[l] = madd::<FMA>(x[l], y[l], acc[l]);
        }
    }
    let mut tail = 0f32;
    for (x, y) in ca.remainder().iter().zip(cb.remainder()) {
        tail = madd::<FMA>(*x, *y, tail);
    }
    let mut s = [0f32; 4];
    for l in 0..LANES {
        s[l % 4] += acc[l];
    }
    (s[0] + s[2]) + (s[1] + s[3]) + tail
}

/// The dot product in 256-bit registers: LLVM turned the portable loop's 16 accumulators into 128-bit pairs
/// and stack spills, and this is the kernel ALS spends most of its time in. Four independent accumulators
/// cover the fused multiply-add latency.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
#[inline]
fn dot_avx2_fma(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let load = |v: &[f32], at: usize| {
        debug_assert!(at + 8 <= v.len());
        // SAFETY: callers pass `at + 8 <= n`; unaligned loads.
        unsafe { _mm256_loadu_ps(v.as_ptr().add(at)) }
    };
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut at = 0;
    while at + 32 <= n {
        for (k, acc) in acc.iter_mut().enumerate() {
            *acc = _mm256_fmadd_ps(load(a, at + 8 * k), load(b, at + 8 * k), *acc);
        }
        at += 32;
    }
    while at + 8 <= n {
        acc[0] = _mm256_fmadd_ps(load(a, at), load(b, at), acc[0]);
        at += 8;
    }
    let sum = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let half = _mm_add_ps(_mm256_castps256_ps128(sum), _mm256_extractf128_ps(sum, 1));
    let pairs = _mm_add_ps(half, _mm_movehl_ps(half, half));
    let total = _mm_add_ss(pairs, _mm_movehdup_ps(pairs));
    let mut result = _mm_cvtss_f32(total);
    for (x, y) in a[at..].iter().zip(&b[at..]) {
        result = x.mul_add(*y, result);
    }
    result
}

/// `y += a · x`
#[inline(always)]
pub(crate) fn axpy<const FMA: bool>(a: f32, x: &[f32], y: &mut [f32]) {
    for (yi, xi) in y.iter_mut().zip(x) {
        *yi = madd::<FMA>(a, *xi, *yi);
    }
}

/// `out = M · v` for a row-major `f × f` matrix `m`.
#[inline(always)]
pub(crate) fn matvec<const FMA: bool>(m: &[f32], v: &[f32], out: &mut [f32]) {
    let f = v.len();
    for (j, o) in out.iter_mut().enumerate() {
        *o = dot::<FMA>(&m[j * f..(j + 1) * f], v);
    }
}

/// Whether the AVX2+FMA flavour can run on this CPU.
#[inline]
pub(crate) fn has_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// `out[j] = x · y_j` for every row `y_j` of the row-major `y` (rows of length `x.len()`).
pub(crate) fn score_rows(x: &[f32], y: &[f32], out: &mut [f32]) {
    #[inline(always)]
    fn run<const FMA: bool>(x: &[f32], y: &[f32], out: &mut [f32]) {
        let f = x.len().max(1);
        for (o, row) in out.iter_mut().zip(y.chunks_exact(f)) {
            *o = dot::<FMA>(x, row);
        }
    }
    #[cfg(target_arch = "x86_64")]
    {
        #[target_feature(enable = "avx2,fma")]
        fn run_fma(x: &[f32], y: &[f32], out: &mut [f32]) {
            run::<true>(x, y, out)
        }
        if has_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked just above).
            unsafe { run_fma(x, y, out) };
            return;
        }
    }
    run::<false>(x, y, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernels_agree_with_naive() {
        let a: Vec<f32> = (0..37).map(|i| i as f32 * 0.5).collect();
        let b: Vec<f32> = (0..37).map(|i| 1.0 - i as f32 * 0.25).collect();
        let naive: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
        assert!((dot::<false>(&a, &b) - naive).abs() < 1e-3);
        #[cfg(target_arch = "x86_64")]
        if has_fma() {
            // Lengths around the 8- and 32-wide steps, tails included.
            for n in [0, 1, 7, 8, 9, 31, 32, 33, 37] {
                let naive: f32 = a[..n].iter().zip(&b[..n]).map(|(x, y)| x * y).sum();
                // SAFETY: the CPU supports AVX2 and FMA (checked just above).
                let fast = unsafe { dot_avx2_fma(&a[..n], &b[..n]) };
                assert!((fast - naive).abs() < 1e-3, "n = {n}: {fast} against {naive}");
            }
        }
        let mut y = b.clone();
        axpy::<false>(2.0, &a, &mut y);
        assert_eq!(y[3], b[3] + 2.0 * a[3]);
        let mut out = vec![0.0; 2];
        score_rows(&a[..3], &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0], &mut out);
        assert_eq!(out, vec![0.0, 1.5]);
    }
}
