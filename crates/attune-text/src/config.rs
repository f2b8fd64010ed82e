//! The model's hyper-parameters, read from `config.json` and `sentence_bert_config.json`.

use std::path::Path;

use serde::Deserialize;

use crate::EmbedError;

/// Sequence length used when `sentence_bert_config.json` is absent (the value all-MiniLM-L6-v2 ships with).
const DEFAULT_MAX_SEQ_LENGTH: usize = 256;

/// The BERT encoder's shape, as in Hugging Face's `config.json`.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct BertConfig {
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    pub vocab_size: usize,
    #[serde(default = "default_type_vocab_size")]
    pub type_vocab_size: usize,
    #[serde(default = "default_layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_hidden_act")]
    pub hidden_act: String,
}

fn default_type_vocab_size() -> usize {
    2
}

fn default_layer_norm_eps() -> f64 {
    1e-12
}

fn default_hidden_act() -> String {
    "gelu".to_owned()
}

#[derive(Debug, Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

impl BertConfig {
    pub fn read(path: &Path) -> Result<Self, EmbedError> {
        let config: Self = read_json(path)?;
        let bad = |reason: String| EmbedError::BadConfig { path: path.to_path_buf(), reason };
        if config.num_attention_heads == 0 || !config.hidden_size.is_multiple_of(config.num_attention_heads) {
            return Err(bad(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }
        if config.hidden_act != "gelu" {
            return Err(bad(format!("hidden_act {:?} is not supported (only \"gelu\")", config.hidden_act)));
        }
        Ok(config)
    }

    pub fn head_dim(&self) -> usize {
        self.hidden_size / self.num_attention_heads
    }
}

/// The longest input in wordpieces (special tokens included): `max_seq_length` from `sentence_bert_config.json`
/// when given, else 256, and never more than the model has position embeddings for.
pub(crate) fn max_seq_length(sentence_config: Option<&Path>, bert: &BertConfig) -> Result<usize, EmbedError> {
    let configured = match sentence_config {
        Some(path) => {
            let config: SentenceBertConfig = read_json(path)?;
            if config.max_seq_length < 2 {
                return Err(EmbedError::BadConfig {
                    path: path.to_path_buf(),
                    reason: format!("max_seq_length {} leaves no room for [CLS] and [SEP]", config.max_seq_length),
                });
            }
            config.max_seq_length
        }
        None => DEFAULT_MAX_SEQ_LENGTH,
    };
    Ok(configured.min(bert.max_position_embeddings))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T, EmbedError> {
    let text = std::fs::read_to_string(path).map_err(|source| EmbedError::Io { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text)
        .map_err(|error| EmbedError::BadConfig { path: path.to_path_buf(), reason: error.to_string() })
}
