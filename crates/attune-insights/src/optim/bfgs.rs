//! BFGS quasi-Newton minimization with a backtracking (Armijo) line search, for smooth objectives with
//! analytic gradients.

use super::Minimum;

/// Stopping rules for [`bfgs`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BfgsOptions {
    /// Most iterations (each costs one gradient evaluation plus the line search).
    pub max_iterations: usize,
    /// Stop when every gradient component is below this in absolute value.
    pub gradient_tolerance: f64,
    /// Stop when an iteration lowers the objective by less than this, relative to its size.
    pub relative_tolerance: f64,
}

impl Default for BfgsOptions {
    fn default() -> Self {
        Self { max_iterations: 500, gradient_tolerance: 1e-8, relative_tolerance: 1e-14 }
    }
}

/// Minimizes `objective`, which returns f(x) and writes ∇f(x) into its second argument.
///
/// A non-finite objective value is treated as +∞ (the line search backs off from it); the start must
/// give a finite value.
pub fn bfgs(mut objective: impl FnMut(&[f64], &mut [f64]) -> f64, start: &[f64], options: BfgsOptions) -> Minimum {
    let n = start.len();
    let mut x = start.to_vec();
    let mut g = vec![0.0; n];
    let mut f = objective(&x, &mut g);
    let mut evaluations = 1;
    if !f.is_finite() {
        return Minimum { x, f: f64::INFINITY, evaluations, converged: false };
    }
    // Inverse Hessian approximation, row-major.
    let mut h = identity(n);
    let mut direction = vec![0.0; n];
    let mut x_new = vec![0.0; n];
    let mut g_new = vec![0.0; n];
    let mut s = vec![0.0; n];
    let mut y = vec![0.0; n];
    let mut hy = vec![0.0; n];
    let mut converged = false;
    let mut first = true;

    for _ in 0..options.max_iterations {
        if g.iter().all(|v| v.abs() < options.gradient_tolerance) {
            converged = true;
            break;
        }
        for i in 0..n {
            direction[i] = -(0..n).map(|j| h[i * n + j] * g[j]).sum::<f64>();
        }
        let mut slope = dot(&direction, &g);
        if slope >= 0.0 {
            // Not a descent direction: restart from steepest descent.
            h = identity(n);
            direction.iter_mut().zip(&g).for_each(|(d, gi)| *d = -gi);
            slope = -dot(&g, &g);
        }
        let mut step = if first { 1.0 / norm(&direction).max(1.0) } else { 1.0 };
        let mut accepted = None;
        for _ in 0..60 {
            x_new.iter_mut().zip(&x).zip(&direction).for_each(|((xn, xi), d)| *xn = xi + step * d);
            let f_new = objective(&x_new, &mut g_new);
            evaluations += 1;
            if f_new.is_finite() && f_new <= f + 1e-4 * step * slope {
                accepted = Some(f_new);
                break;
            }
            step *= 0.5;
        }
        let Some(f_new) = accepted else {
            // No decrease along the direction: at the minimum to working precision.
            converged = g.iter().all(|v| v.abs() < options.gradient_tolerance.sqrt());
            break;
        };
        for i in 0..n {
            s[i] = x_new[i] - x[i];
            y[i] = g_new[i] - g[i];
        }
        let decrease = f - f_new;
        x.copy_from_slice(&x_new);
        g.copy_from_slice(&g_new);
        f = f_new;
        let sy = dot(&s, &y);
        if sy > 1e-12 * norm(&s) * norm(&y) {
            if first {
                let scale = sy / dot(&y, &y);
                h.iter_mut().for_each(|v| *v *= scale);
            }
            // H ← (I − ρ s yᵀ) H (I − ρ y sᵀ) + ρ s sᵀ
            let rho = 1.0 / sy;
            for i in 0..n {
                hy[i] = (0..n).map(|j| h[i * n + j] * y[j]).sum();
            }
            let yhy = dot(&y, &hy);
            for i in 0..n {
                for j in 0..n {
                    h[i * n + j] += -rho * (hy[i] * s[j] + s[i] * hy[j]) + (rho * rho * yhy + rho) * s[i] * s[j];
                }
            }
        }
        first = false;
        if decrease <= options.relative_tolerance * (f.abs() + options.relative_tolerance) {
            converged = true;
            break;
        }
    }
    Minimum { x, f, evaluations, converged }
}

fn identity(n: usize) -> Vec<f64> {
    let mut m = vec![0.0; n * n];
    (0..n).for_each(|i| m[i * n + i] = 1.0);
    m
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn norm(a: &[f64]) -> f64 {
    dot(a, a).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimizes_rosenbrock_with_gradient() {
        let objective = |x: &[f64], g: &mut [f64]| {
            g[0] = -2.0 * (1.0 - x[0]) - 400.0 * x[0] * (x[1] - x[0] * x[0]);
            g[1] = 200.0 * (x[1] - x[0] * x[0]);
            (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2)
        };
        let m = bfgs(objective, &[-1.2, 1.0], BfgsOptions::default());
        assert!(m.converged);
        assert!((m.x[0] - 1.0).abs() < 1e-6 && (m.x[1] - 1.0).abs() < 1e-6, "{:?}", m.x);
    }

    #[test]
    fn backs_off_from_infinite_values() {
        // f = x - ln x is minimized at x = 1 and undefined for x <= 0.
        let objective = |x: &[f64], g: &mut [f64]| {
            g[0] = 1.0 - 1.0 / x[0];
            if x[0] > 0.0 { x[0] - x[0].ln() } else { f64::NAN }
        };
        let m = bfgs(objective, &[5.0], BfgsOptions::default());
        assert!((m.x[0] - 1.0).abs() < 1e-6, "{:?}", m.x);
    }
}
