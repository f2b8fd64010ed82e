//! [`SentenceEmbedder`]: texts in, unit-length sentence vectors out (tokenise, batch by length, encode, mean-pool
//! over the real tokens, L2-normalise).

use std::fmt;
use std::path::Path;

use crate::EmbedError;
use crate::batch::PaddedBatch;
use crate::config::{self, BertConfig};
use crate::encoder::BertEncoder;
use crate::model_dir::ModelFiles;
use crate::tokenize::WordPieceTokenizer;
use crate::vector::mean_pool_unit;
use crate::weights::WeightStore;

/// Sentences per forward pass unless changed with [`SentenceEmbedder::with_batch_size`].
pub const DEFAULT_BATCH_SIZE: usize = 64;

/// Most padded tokens in one forward pass: long texts go in smaller batches, which bounds the memory of the
/// `[batch, heads, seq_len, seq_len]` attention scores (about 50 MB at 16 texts of 256 tokens).
const MAX_PADDED_TOKENS_PER_BATCH: usize = 4096;

/// A sentence-transformers BERT model (all-MiniLM-L6-v2) loaded for CPU inference.
///
/// Thread-safe (`Send + Sync`); one forward pass already uses every core, so share one instance rather than
/// running several side by side.
pub struct SentenceEmbedder {
    tokenizer: WordPieceTokenizer,
    encoder: BertEncoder,
    max_seq_length: usize,
    batch_size: usize,
}

impl SentenceEmbedder {
    /// Loads `model.safetensors`, `tokenizer.json`, `config.json` and (if present) `sentence_bert_config.json`
    /// from `model_dir`.
    pub fn load(model_dir: &Path) -> Result<Self, EmbedError> {
        let files = ModelFiles::locate(model_dir)?;
        let bert = BertConfig::read(&files.config)?;
        let max_seq_length = config::max_seq_length(files.sentence_config.as_deref(), &bert)?;
        let tokenizer = WordPieceTokenizer::load(&files.tokenizer, max_seq_length)?;
        let encoder = BertEncoder::load(&WeightStore::load(&files.weights)?, &bert)?;
        Ok(Self { tokenizer, encoder, max_seq_length, batch_size: DEFAULT_BATCH_SIZE })
    }

    /// Sets how many sentences go through the encoder together (at least 1). Larger batches amortise per-pass
    /// overhead; sentences are grouped by length, so padding stays small.
    pub fn with_batch_size(mut self, batch_size: usize) -> Self {
        self.set_batch_size(batch_size);
        self
    }

    /// See [`Self::with_batch_size`].
    pub fn set_batch_size(&mut self, batch_size: usize) {
        self.batch_size = batch_size.max(1);
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Length of the returned vectors (384 for all-MiniLM-L6-v2).
    pub fn dimension(&self) -> usize {
        self.encoder.hidden_size()
    }

    /// Longest input in wordpieces, `[CLS]` and `[SEP]` included; longer texts are truncated to it.
    pub fn max_seq_length(&self) -> usize {
        self.max_seq_length
    }

    /// Number of wordpieces the model sees for `text` (after truncation, special tokens included).
    pub fn token_count(&self, text: &str) -> Result<usize, EmbedError> {
        Ok(self.tokenizer.encode(&[text])?.first().map_or(0, Vec::len))
    }

    /// Embeds one text.
    pub fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        Ok(self.embed(&[text])?.pop().unwrap_or_default())
    }

    /// Embeds each text into a unit-length vector of [`Self::dimension`] floats, in input order.
    ///
    /// Texts are sorted by token count and encoded in batches padded to their own longest member; padding is
    /// masked out of attention and pooling, so a text's vector does not depend on what it is batched with.
    pub fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let token_ids = self.tokenizer.encode(texts)?;
        let mut vectors = vec![Vec::new(); texts.len()];
        for batch_indices in self.plan_batches(&token_ids) {
            let sequences: Vec<&[u32]> = batch_indices.iter().map(|&i| token_ids[i].as_slice()).collect();
            let pooled = self.encode_batch(&sequences)?;
            for (index, vector) in batch_indices.into_iter().zip(pooled) {
                vectors[index] = vector;
            }
        }
        Ok(vectors)
    }

    /// Groups text indices into batches of similar length: sorted by token count, cut at the batch size or when
    /// the padded batch would exceed the token budget.
    fn plan_batches(&self, token_ids: &[Vec<u32>]) -> Vec<Vec<usize>> {
        let mut order: Vec<usize> = (0..token_ids.len()).collect();
        order.sort_by_key(|&i| token_ids[i].len());
        let mut batches: Vec<Vec<usize>> = Vec::new();
        let mut current: Vec<usize> = Vec::new();
        for index in order {
            // Sorted ascending, so this text is the longest of the batch it joins.
            let padded_tokens = (current.len() + 1) * token_ids[index].len();
            if !current.is_empty() && (current.len() == self.batch_size || padded_tokens > MAX_PADDED_TOKENS_PER_BATCH)
            {
                batches.push(std::mem::take(&mut current));
            }
            current.push(index);
        }
        if !current.is_empty() {
            batches.push(current);
        }
        batches
    }

    /// Runs the encoder on one batch and mean-pools each sentence over its real tokens.
    fn encode_batch(&self, sequences: &[&[u32]]) -> Result<Vec<Vec<f32>>, EmbedError> {
        let batch = PaddedBatch::new(sequences);
        let hidden_states = self.encoder.forward(&batch)?.flatten_all()?.to_vec1::<f32>()?;
        let hidden = self.dimension();
        let floats_per_sentence = batch.seq_len * hidden;
        let pooled = (batch.lengths.iter().enumerate())
            .map(|(row, &length)| {
                mean_pool_unit(&hidden_states[row * floats_per_sentence..][..length * hidden], hidden)
            })
            .collect();
        Ok(pooled)
    }
}

impl fmt::Debug for SentenceEmbedder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SentenceEmbedder")
            .field("dimension", &self.dimension())
            .field("max_seq_length", &self.max_seq_length)
            .field("batch_size", &self.batch_size)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedder_can_be_shared_between_threads() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<SentenceEmbedder>();
    }
}
