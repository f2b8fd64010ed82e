//! The Rust forward pass against the numpy reference: same tokenisation, same vectors (cosine >= 0.999).

mod common;

use attune_text::cosine;

#[test]
fn vectors_match_the_numpy_reference() {
    let Some(embedder) = common::load_embedder_or_skip("vectors_match_the_numpy_reference") else { return };
    let reference = common::reference_sentences();
    assert!(reference.len() >= 12, "expected the full reference set, got {}", reference.len());
    let texts: Vec<&str> = reference.iter().map(|r| r.sentence.as_str()).collect();
    // In one batch (padded to the longest, so the f32 weights), and one at a time (a short sentence alone goes
    // through the half-precision weights, as a search query does).
    let batched = embedder.embed(&texts).expect("embedding the reference sentences");
    let alone: Vec<Vec<f32>> =
        texts.iter().map(|text| embedder.embed_one(text).expect("embedding one sentence")).collect();
    let mut worst = f32::INFINITY;
    for (path, vectors) in [("batch", &batched), ("alone", &alone)] {
        for (expected, actual) in reference.iter().zip(vectors) {
            assert_eq!(actual.len(), 384);
            let similarity = cosine(&expected.vector, actual);
            let opening: String = expected.sentence.chars().take(60).collect();
            eprintln!("{path} cos {similarity:.7}  {} tokens  {opening:?}", expected.tokens);
            assert!(similarity >= 0.999, "{path}: cosine {similarity} < 0.999 for {:?}", expected.sentence);
            worst = worst.min(similarity);
        }
    }
    assert!(reference.iter().any(|r| r.tokens <= 12), "the set should hold a sentence short enough for a query");
    eprintln!("lowest cosine vs reference: {worst:.7}");
}

#[test]
fn token_counts_match_the_reference_tokenizer_and_truncate_at_256() {
    let Some(embedder) = common::load_embedder_or_skip("token_counts_match_the_reference") else { return };
    assert_eq!(embedder.max_seq_length(), 256);
    for expected in common::reference_sentences() {
        let count = embedder.token_count(&expected.sentence).expect("tokenizing");
        assert_eq!(count, expected.tokens, "token count of {:?}", expected.sentence);
    }
    let longest = common::reference_sentences().iter().map(|r| r.tokens).max().unwrap_or(0);
    assert_eq!(longest, 256, "the reference set should include a text truncated at 256 wordpieces");
}
