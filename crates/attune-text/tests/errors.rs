//! Loading failures are typed errors that name the offending path, never panics. Needs no model.

mod common;

use std::path::Path;

use attune_text::{EmbedError, SentenceEmbedder};

#[test]
fn missing_model_dir_is_a_typed_error() {
    let missing = Path::new("/nonexistent/attune/all-MiniLM-L6-v2");
    let error = SentenceEmbedder::load(missing).expect_err("must fail");
    assert!(matches!(&error, EmbedError::ModelDirNotFound { path } if path == missing), "{error:?}");
    assert!(error.to_string().contains("/nonexistent/attune/all-MiniLM-L6-v2"), "{error}");
}

#[test]
fn missing_weights_file_is_named() {
    let dir = tempfile::tempdir().expect("temp dir");
    let error = SentenceEmbedder::load(dir.path()).expect_err("must fail");
    assert!(matches!(&error, EmbedError::MissingFile { path } if path.ends_with("model.safetensors")), "{error:?}");
    assert!(error.to_string().contains("model.safetensors"), "{error}");
}

#[test]
fn corrupt_files_are_reported_with_their_path() {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("model.safetensors"), b"not safetensors").expect("write");
    std::fs::write(dir.path().join("tokenizer.json"), b"{}").expect("write");
    std::fs::write(dir.path().join("config.json"), b"{\"hidden_size\": 384}").expect("write");
    let error = SentenceEmbedder::load(dir.path()).expect_err("bad config");
    assert!(matches!(&error, EmbedError::BadConfig { path, .. } if path.ends_with("config.json")), "{error:?}");

    let Some(model_dir) = common::model_dir_or_skip("corrupt_files_are_reported_with_their_path") else { return };
    std::fs::copy(model_dir.join("config.json"), dir.path().join("config.json")).expect("copy config");
    let error = SentenceEmbedder::load(dir.path()).expect_err("bad tokenizer");
    assert!(matches!(&error, EmbedError::Tokenizer { path, .. } if path.ends_with("tokenizer.json")), "{error:?}");

    std::fs::copy(model_dir.join("tokenizer.json"), dir.path().join("tokenizer.json")).expect("copy tokenizer");
    let error = SentenceEmbedder::load(dir.path()).expect_err("bad weights");
    assert!(matches!(&error, EmbedError::BadWeights { path, .. } if path.ends_with("model.safetensors")), "{error:?}");
    assert!(error.to_string().contains("model.safetensors"), "{error}");
}
