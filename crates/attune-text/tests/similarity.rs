//! The similarity matrix published with all-MiniLM-L6-v2 for its three example sentences.

mod common;

use attune_text::cosine;

#[test]
fn documented_similarity_matrix() {
    let Some(embedder) = common::load_embedder_or_skip("documented_similarity_matrix") else { return };
    let vectors = embedder
        .embed(&["The weather is lovely today.", "It's so sunny outside!", "He drove to the stadium."])
        .expect("embedding");
    let pairs = [((0, 1), 0.6660), ((0, 2), 0.1046), ((1, 2), 0.1411)];
    for ((a, b), expected) in pairs {
        let similarity = cosine(&vectors[a], &vectors[b]);
        eprintln!("sim({a},{b}) = {similarity:.5} (documented {expected:.4})");
        assert!((similarity - expected).abs() < 5e-4, "sim({a},{b}) = {similarity}, documented {expected}");
    }
    for vector in &vectors {
        let norm = vector.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "vectors are unit length, got norm {norm}");
    }
}
