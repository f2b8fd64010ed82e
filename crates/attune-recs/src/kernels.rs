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
        let mut y = b.clone();
        axpy::<false>(2.0, &a, &mut y);
        assert_eq!(y[3], b[3] + 2.0 * a[3]);
        let mut out = vec![0.0; 2];
        score_rows(&a[..3], &[1.0, 0.0, 0.0, 0.0, 1.0, 1.0], &mut out);
        assert_eq!(out, vec![0.0, 1.5]);
    }
}
