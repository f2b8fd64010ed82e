//! Small helpers on embedding vectors: cosine similarity, L2 normalisation and mean pooling.

/// Cosine similarity of two vectors; 0.0 when either is all zeros. Only the common prefix is compared when the
/// lengths differ. For the unit-length vectors that [`crate::SentenceEmbedder::embed`] returns this is their dot
/// product.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let (mut dot, mut norm_a, mut norm_b) = (0.0f32, 0.0f32, 0.0f32);
    for (&x, &y) in a.iter().zip(b) {
        dot += x * y;
        norm_a += x * x;
        norm_b += y * y;
    }
    if norm_a == 0.0 || norm_b == 0.0 { 0.0 } else { dot / (norm_a.sqrt() * norm_b.sqrt()) }
}

/// Scales `values` to unit Euclidean length in place; leaves an all-zero vector as it is.
fn normalize_in_place(values: &mut [f32]) {
    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
    if norm > 0.0 {
        values.iter_mut().for_each(|v| *v /= norm);
    }
}

/// The unit-length mean of the `width`-float rows in `token_rows` (a sentence's real tokens, padding excluded).
pub(crate) fn mean_pool_unit(token_rows: &[f32], width: usize) -> Vec<f32> {
    let mut sum = vec![0.0f32; width];
    for token in token_rows.chunks_exact(width) {
        sum.iter_mut().zip(token).for_each(|(total, value)| *total += value);
    }
    // Dividing by the token count would not change the direction, so normalising the sum gives the same vector.
    normalize_in_place(&mut sum);
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_parallel_orthogonal_and_zero_vectors() {
        assert!((cosine(&[1.0, 2.0], &[2.0, 4.0]) - 1.0).abs() < 1e-6);
        assert!(cosine(&[1.0, 0.0], &[0.0, 3.0]).abs() < 1e-6);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 1.0]), 0.0);
    }

    #[test]
    fn mean_pool_averages_rows_then_normalises() {
        let rows = [1.0, 0.0, 3.0, 4.0]; // two tokens of width 2: mean (2, 2)
        let pooled = mean_pool_unit(&rows, 2);
        let expected = 1.0 / 2.0f32.sqrt();
        assert!(pooled.iter().all(|v| (v - expected).abs() < 1e-6), "{pooled:?}");
    }

    #[test]
    fn normalize_gives_unit_length() {
        let mut v = vec![3.0, 4.0];
        normalize_in_place(&mut v);
        assert_eq!(v, vec![0.6, 0.8]);
        let mut zero = vec![0.0; 3];
        normalize_in_place(&mut zero);
        assert_eq!(zero, vec![0.0; 3]);
    }
}
