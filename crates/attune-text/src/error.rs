//! The one error type of the crate: every failure names the file or tensor it is about.

use std::path::PathBuf;

/// What can go wrong while loading the model or embedding text.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// The model directory does not exist (or is not a directory).
    #[error("model directory not found: {path} (set ATTUNE_MODEL_DIR to the all-MiniLM-L6-v2 folder)")]
    ModelDirNotFound { path: PathBuf },

    /// A file the model needs is not in the model directory.
    #[error("model file missing: {path}")]
    MissingFile { path: PathBuf },

    /// A file exists but could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// `config.json` or `sentence_bert_config.json` is not what a BERT sentence encoder needs.
    #[error("bad model config {path}: {reason}")]
    BadConfig { path: PathBuf, reason: String },

    /// The weights file cannot be parsed, lacks a tensor, or has a tensor of the wrong shape.
    #[error("bad weights in {path}: {reason}")]
    BadWeights { path: PathBuf, reason: String },

    /// `tokenizer.json` cannot be loaded or configured.
    #[error("cannot load tokenizer {path}: {reason}")]
    Tokenizer { path: PathBuf, reason: String },

    /// The tokenizer failed on an input text.
    #[error("cannot tokenize input: {reason}")]
    Tokenize { reason: String },

    /// The forward pass failed (a tensor operation returned an error).
    #[error("inference failed: {0}")]
    Inference(#[from] candle_core::Error),
}
