//! Batching must not change results: padding is masked out, order is kept, batch size is only a speed knob. A
//! batch of at most a few dozen tokens (a query) is multiplied with half-precision copies of the weights and a
//! larger one with the f32 weights, so "the same vector" allows for that rounding (about 1e-4 per component; a
//! padding leak moves components by 1e-2).

mod common;

use attune_text::cosine;

fn assert_same_vectors(a: &[f32], b: &[f32], what: &str) {
    let largest_difference = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
    assert!(largest_difference < 3e-4, "{what}: vectors differ by up to {largest_difference}");
    assert!(cosine(a, b) > 0.99999, "{what}: cosine {}", cosine(a, b));
}

#[test]
fn batched_results_equal_single_results() {
    let Some(embedder) = common::load_embedder_or_skip("batched_results_equal_single_results") else { return };
    let reference = common::reference_sentences();
    // Mixed lengths (3 to 256 wordpieces), so short sentences are padded in the batch.
    let texts: Vec<&str> = reference.iter().map(|r| r.sentence.as_str()).collect();
    let batched = embedder.embed(&texts).expect("batched");
    for (text, from_batch) in texts.iter().zip(&batched) {
        let alone = embedder.embed_one(text).expect("single");
        assert_same_vectors(from_batch, &alone, text);
    }
}

#[test]
fn padding_in_one_unsorted_batch_does_not_leak() {
    let Some(embedder) = common::load_embedder_or_skip("padding_does_not_leak") else { return };
    let short = "a";
    let long = "Warm wool jumper for winter, navy, size M, hand knitted in Scotland from merino and cashmere";
    let together = embedder.embed(&[long, short, long, short]).expect("together");
    let small_batches = embedder.with_batch_size(1).embed(&[long, short]).expect("one at a time");
    assert_same_vectors(&together[1], &small_batches[1], "short text padded next to a long one");
    assert_same_vectors(&together[0], &small_batches[0], "long text");
    assert_same_vectors(&together[0], &together[2], "same text twice in a batch");
}

#[test]
fn output_order_and_shape() {
    let Some(embedder) = common::load_embedder_or_skip("output_order_and_shape") else { return };
    assert_eq!(embedder.dimension(), 384);
    assert!(embedder.embed(&[]).expect("empty input").is_empty());
    let texts = ["navy wool jumper", "", "a", "navy wool jumper"];
    let vectors = embedder.embed(&texts).expect("embedding");
    assert_eq!(vectors.len(), texts.len());
    assert!(vectors.iter().all(|v| v.len() == 384 && v.iter().all(|x| x.is_finite())));
    assert_same_vectors(&vectors[0], &vectors[3], "identical texts");
    assert!(cosine(&vectors[0], &vectors[2]) < 0.99, "different texts give different vectors");
}
