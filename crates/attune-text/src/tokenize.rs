//! Text to wordpiece ids with the model's own `tokenizer.json`, without its baked-in fixed padding.

use std::path::Path;

use tokenizers::{Tokenizer, TruncationParams};

use crate::EmbedError;

/// The model's WordPiece tokenizer, set to truncate at `max_seq_length` and not to pad (batches are padded to
/// their own longest sentence by the embedder).
pub(crate) struct WordPieceTokenizer {
    inner: Tokenizer,
}

impl WordPieceTokenizer {
    pub fn load(path: &Path, max_seq_length: usize) -> Result<Self, EmbedError> {
        let error = |reason: String| EmbedError::Tokenizer { path: path.to_path_buf(), reason };
        let mut inner = Tokenizer::from_file(path).map_err(|e| error(e.to_string()))?;
        inner.with_padding(None);
        inner
            .with_truncation(Some(TruncationParams { max_length: max_seq_length, ..TruncationParams::default() }))
            .map_err(|e| error(e.to_string()))?;
        Ok(Self { inner })
    }

    /// Token ids of each text, `[CLS]` and `[SEP]` included.
    pub fn encode(&self, texts: &[&str]) -> Result<Vec<Vec<u32>>, EmbedError> {
        let encodings = self
            .inner
            .encode_batch_fast(texts.to_vec(), true)
            .map_err(|e| EmbedError::Tokenize { reason: e.to_string() })?;
        Ok(encodings.into_iter().map(|encoding| encoding.get_ids().to_vec()).collect())
    }
}
