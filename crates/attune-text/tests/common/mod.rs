//! Shared by the integration tests: finding the model (or skipping) and reading the reference vectors.

#![allow(dead_code)] // each test binary uses its own subset

use std::path::PathBuf;

use attune_text::{SentenceEmbedder, default_model_dir};
use serde::Deserialize;

/// The model directory, or `None` (with a note on stderr) when the shared models are not on this machine.
pub fn model_dir_or_skip(test: &str) -> Option<PathBuf> {
    let dir = default_model_dir().filter(|dir| dir.join("model.safetensors").is_file());
    if dir.is_none() {
        eprintln!(
            "SKIPPED {test}: all-MiniLM-L6-v2 not found (set ATTUNE_MODEL_DIR or put shared/models beside the workspace)"
        );
    }
    dir
}

pub fn load_embedder_or_skip(test: &str) -> Option<SentenceEmbedder> {
    let dir = model_dir_or_skip(test)?;
    Some(SentenceEmbedder::load(&dir).unwrap_or_else(|e| panic!("loading {}: {e}", dir.display())))
}

#[derive(Debug, Deserialize)]
pub struct ReferenceSentence {
    pub sentence: String,
    /// Wordpieces the reference tokenizer produced (special tokens included, truncated at 256).
    pub tokens: usize,
    pub vector: Vec<f32>,
}

#[derive(Debug, Deserialize)]
struct ReferenceFile {
    sentences: Vec<ReferenceSentence>,
}

/// `tests/data/reference_vectors.json`, written by `bench/python/minilm_reference.py vectors`.
pub fn reference_sentences() -> Vec<ReferenceSentence> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/reference_vectors.json");
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {path}: {e}"));
    let file: ReferenceFile = serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {path}: {e}"));
    file.sentences
}
