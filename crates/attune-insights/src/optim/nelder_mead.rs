//! The Nelder–Mead simplex method with dimension-adapted coefficients (Gao & Han 2012), which keep it
//! effective on the 10–18 parameter problems of seasonal exponential smoothing.

use super::Minimum;

/// Stopping rules for [`nelder_mead`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NelderMeadOptions {
    /// Most objective evaluations.
    pub max_evaluations: usize,
    /// Stop when the simplex's objective values agree to this relative tolerance.
    pub relative_tolerance: f64,
}

impl Default for NelderMeadOptions {
    fn default() -> Self {
        Self { max_evaluations: 2_000, relative_tolerance: 1e-8 }
    }
}

/// Minimizes `f` from `start`, with an initial simplex that moves each coordinate by its `steps` entry.
///
/// A non-finite objective value counts as +∞, so an objective can reject inadmissible points by returning
/// `f64::INFINITY`. `start` should be admissible.
pub fn nelder_mead(
    mut f: impl FnMut(&[f64]) -> f64,
    start: &[f64],
    steps: &[f64],
    options: NelderMeadOptions,
) -> Minimum {
    let n = start.len();
    assert_eq!(n, steps.len(), "one step per coordinate");
    let mut evaluations = 0usize;
    let mut eval = |x: &[f64], evaluations: &mut usize| {
        *evaluations += 1;
        let v = f(x);
        if v.is_finite() { v } else { f64::INFINITY }
    };
    if n == 0 {
        let v = eval(start, &mut evaluations);
        return Minimum { x: Vec::new(), f: v, evaluations, converged: true };
    }
    let dim = n as f64;
    let (reflect, expand, contract, shrink) = (1.0, 1.0 + 2.0 / dim, 0.75 - 0.5 / dim, 1.0 - 1.0 / dim);

    let mut points: Vec<Vec<f64>> = Vec::with_capacity(n + 1);
    let mut values = Vec::with_capacity(n + 1);
    points.push(start.to_vec());
    values.push(eval(start, &mut evaluations));
    for i in 0..n {
        let mut p = start.to_vec();
        p[i] += steps[i];
        values.push(eval(&p, &mut evaluations));
        points.push(p);
    }
    let mut centroid = vec![0.0; n];
    let mut trial = vec![0.0; n];
    let mut trial2 = vec![0.0; n];
    let mut converged = false;

    while evaluations < options.max_evaluations {
        let (best, worst, second) = extremes(&values);
        let (f_best, f_worst) = (values[best], values[worst]);
        if f_worst.is_finite()
            && f_worst - f_best <= options.relative_tolerance * (f_best.abs() + options.relative_tolerance)
        {
            converged = true;
            break;
        }
        centroid.iter_mut().for_each(|c| *c = 0.0);
        for (j, p) in points.iter().enumerate() {
            if j != worst {
                centroid.iter_mut().zip(p).for_each(|(c, v)| *c += v);
            }
        }
        centroid.iter_mut().for_each(|c| *c /= dim);

        along(&centroid, &points[worst], -reflect, &mut trial);
        let f_reflected = eval(&trial, &mut evaluations);
        if f_reflected < f_best {
            along(&centroid, &points[worst], -reflect * expand, &mut trial2);
            let f_expanded = eval(&trial2, &mut evaluations);
            if f_expanded < f_reflected {
                points[worst].copy_from_slice(&trial2);
                values[worst] = f_expanded;
            } else {
                points[worst].copy_from_slice(&trial);
                values[worst] = f_reflected;
            }
        } else if f_reflected < values[second] {
            points[worst].copy_from_slice(&trial);
            values[worst] = f_reflected;
        } else {
            let outside = f_reflected < f_worst;
            let factor = if outside { -reflect * contract } else { contract };
            along(&centroid, &points[worst], factor, &mut trial2);
            let f_contracted = eval(&trial2, &mut evaluations);
            let accepted = if outside { f_contracted <= f_reflected } else { f_contracted < f_worst };
            if accepted {
                points[worst].copy_from_slice(&trial2);
                values[worst] = f_contracted;
            } else {
                let anchor = points[best].clone();
                for j in 0..=n {
                    if j != best {
                        for (v, a) in points[j].iter_mut().zip(&anchor) {
                            *v = a + shrink * (*v - a);
                        }
                        values[j] = eval(&points[j], &mut evaluations);
                    }
                }
            }
        }
    }
    let (best, _, _) = extremes(&values);
    Minimum { x: points.swap_remove(best), f: values[best], evaluations, converged }
}

/// out = centroid + factor · (point − centroid).
fn along(centroid: &[f64], point: &[f64], factor: f64, out: &mut [f64]) {
    for ((o, c), p) in out.iter_mut().zip(centroid).zip(point) {
        *o = c + factor * (p - c);
    }
}

/// Indices of the best, the worst and the second-worst vertex (ties keep the lower index as better).
fn extremes(values: &[f64]) -> (usize, usize, usize) {
    let mut best = 0;
    let mut worst = 0;
    for (i, &v) in values.iter().enumerate() {
        if v < values[best] {
            best = i;
        }
        if v >= values[worst] {
            worst = i;
        }
    }
    let mut second = if worst == 0 { 1 } else { 0 };
    for (i, &v) in values.iter().enumerate() {
        if i != worst && v >= values[second] {
            second = i;
        }
    }
    (best, worst, second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimizes_rosenbrock() {
        let rosenbrock = |x: &[f64]| (1.0 - x[0]).powi(2) + 100.0 * (x[1] - x[0] * x[0]).powi(2);
        let options = NelderMeadOptions { max_evaluations: 5_000, relative_tolerance: 1e-14 };
        let m = nelder_mead(rosenbrock, &[-1.2, 1.0], &[0.1, 0.1], options);
        assert!(m.converged);
        assert!((m.x[0] - 1.0).abs() < 1e-4 && (m.x[1] - 1.0).abs() < 1e-4, "{:?}", m.x);
    }

    #[test]
    fn respects_infinite_walls() {
        // Minimum of (x - 2)² restricted to x <= 1 is at the wall.
        let f = |x: &[f64]| if x[0] > 1.0 { f64::INFINITY } else { (x[0] - 2.0).powi(2) };
        let m = nelder_mead(f, &[0.0], &[0.3], NelderMeadOptions::default());
        assert!(m.x[0] <= 1.0 && m.x[0] > 0.999, "{:?}", m.x);
    }

    #[test]
    fn quadratic_in_many_dimensions() {
        let f = |x: &[f64]| x.iter().enumerate().map(|(i, v)| (i as f64 + 1.0) * (v - 0.5).powi(2)).sum::<f64>();
        let options = NelderMeadOptions { max_evaluations: 20_000, relative_tolerance: 1e-15 };
        let m = nelder_mead(f, &[0.0; 8], &[0.2; 8], options);
        assert!(m.f < 1e-8, "{}", m.f);
    }
}
