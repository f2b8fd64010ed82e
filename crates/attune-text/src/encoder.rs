//! The BERT encoder of MiniLM written out on candle tensors: embeddings, then per layer multi-head self-attention
//! and a GELU feed-forward block, each followed by a residual connection and layer normalisation (post-norm).
//! Matmuls are candle's (multi-threaded gemm), or [`crate::panel_matmul`] for a few rows; the steps between them
//! are the fused ops of [`crate::fused_ops`].

use candle_core::{Device, Result, Tensor, bail};
use rayon::prelude::*;

use crate::EmbedError;
use crate::batch::PaddedBatch;
use crate::config::BertConfig;
use crate::fast_math::layer_norm_in_place;
use crate::fused_ops::{AttentionDims, BiasGelu, BiasResidualLayerNorm, MaskedSoftmax, MergeHeads, SplitHeads};
use crate::panel_matmul::PanelWeights;
use crate::weights::WeightStore;

/// A dense layer `y = x W^T + b`: `W^T` as a contiguous `[in, out]` tensor for gemm, the same weights as
/// panels for a few rows, the bias as plain floats for the fused op that follows it.
struct Dense {
    weight_t: Tensor,
    panels: PanelWeights,
    bias: Vec<f32>,
}

/// Up to this many rows (tokens of the batch, padding included) a dense layer uses the panel kernel; gemm is
/// faster above (measured with `embed_throughput`).
const PANEL_ROWS_LIMIT: usize = 32;

impl Dense {
    fn new(weight_t: Tensor, bias: Vec<f32>) -> Result<Self> {
        let (inputs, outputs) = weight_t.dims2()?;
        let panels = PanelWeights::from_transposed(&weight_t.flatten_all()?.to_vec1::<f32>()?, inputs, outputs);
        Ok(Self { weight_t, panels, bias })
    }

    /// `x W^T` (the bias is left to the next fused op).
    fn project(&self, x: &Tensor) -> Result<Tensor> {
        let (rows, _) = x.dims2()?;
        if rows > PANEL_ROWS_LIMIT {
            return x.matmul(&self.weight_t);
        }
        let product = self.panels.multiply(&x.flatten_all()?.to_vec1::<f32>()?, rows);
        Tensor::from_vec(product, (rows, self.panels.outputs()), &Device::Cpu)
    }
}

struct NormWeights {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

struct EncoderLayer {
    /// Query, key and value projections in one `[hidden, 3 * hidden]` matmul; the query part is pre-scaled by
    /// `1 / sqrt(head_dim)`.
    query_key_value: Dense,
    attention_output: Dense,
    attention_norm: NormWeights,
    intermediate: Dense,
    output: Dense,
    output_norm: NormWeights,
}

pub(crate) struct BertEncoder {
    /// `[vocab, hidden]`, row-major.
    word_embeddings: Vec<f32>,
    /// `[max_positions, hidden]`: position embeddings plus the token type 0 embedding (inputs are single sentences).
    position_and_type_embeddings: Vec<f32>,
    embedding_norm: NormWeights,
    layers: Vec<EncoderLayer>,
    heads: usize,
    head_dim: usize,
    hidden_size: usize,
    eps: f32,
}

impl BertEncoder {
    pub fn load(store: &WeightStore, config: &BertConfig) -> std::result::Result<Self, EmbedError> {
        let hidden = config.hidden_size;
        let floats = |tensor: Tensor| tensor.flatten_all()?.to_vec1::<f32>();
        let tensor_error = |e: candle_core::Error| store.error(e.to_string());
        let norm = |prefix: &str| -> std::result::Result<NormWeights, EmbedError> {
            Ok(NormWeights {
                gamma: floats(store.get(&format!("{prefix}.weight"), &[hidden])?).map_err(tensor_error)?,
                beta: floats(store.get(&format!("{prefix}.bias"), &[hidden])?).map_err(tensor_error)?,
            })
        };
        let dense = |prefix: &str, inputs: usize, outputs: usize, scale: f64| {
            let weight = store.get(&format!("{prefix}.weight"), &[outputs, inputs])?;
            let bias = store.get(&format!("{prefix}.bias"), &[outputs])?;
            let scaled = |t: Tensor| if scale == 1.0 { Ok(t) } else { t.affine(scale, 0.0) };
            Ok::<_, EmbedError>((
                scaled(weight).and_then(|w| w.t()?.contiguous()).map_err(tensor_error)?,
                scaled(bias).and_then(floats).map_err(tensor_error)?,
            ))
        };

        let word_embeddings = store.get("embeddings.word_embeddings.weight", &[config.vocab_size, hidden])?;
        let positions =
            store.get("embeddings.position_embeddings.weight", &[config.max_position_embeddings, hidden])?;
        let token_types = store.get("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, hidden])?;
        let position_and_type = token_types.get(0).and_then(|type_zero| positions.broadcast_add(&type_zero));

        let query_scale = 1.0 / (config.head_dim() as f64).sqrt();
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for index in 0..config.num_hidden_layers {
            let prefix = format!("encoder.layer.{index}");
            let (query_w, query_b) = dense(&format!("{prefix}.attention.self.query"), hidden, hidden, query_scale)?;
            let (key_w, key_b) = dense(&format!("{prefix}.attention.self.key"), hidden, hidden, 1.0)?;
            let (value_w, value_b) = dense(&format!("{prefix}.attention.self.value"), hidden, hidden, 1.0)?;
            let fused_weight = Tensor::cat(&[&query_w, &key_w, &value_w], 1).and_then(|w| w.contiguous());
            let layer_dense = |name: &str, inputs, outputs| {
                dense(&format!("{prefix}.{name}"), inputs, outputs, 1.0)
                    .and_then(|(weight_t, bias)| Dense::new(weight_t, bias).map_err(tensor_error))
            };
            layers.push(EncoderLayer {
                query_key_value: fused_weight
                    .and_then(|weight_t| Dense::new(weight_t, [query_b, key_b, value_b].concat()))
                    .map_err(tensor_error)?,
                attention_output: layer_dense("attention.output.dense", hidden, hidden)?,
                attention_norm: norm(&format!("{prefix}.attention.output.LayerNorm"))?,
                intermediate: layer_dense("intermediate.dense", hidden, config.intermediate_size)?,
                output: layer_dense("output.dense", config.intermediate_size, hidden)?,
                output_norm: norm(&format!("{prefix}.output.LayerNorm"))?,
            });
        }
        Ok(Self {
            word_embeddings: floats(word_embeddings).map_err(tensor_error)?,
            position_and_type_embeddings: position_and_type.and_then(floats).map_err(tensor_error)?,
            embedding_norm: norm("embeddings.LayerNorm")?,
            layers,
            heads: config.num_attention_heads,
            head_dim: config.head_dim(),
            hidden_size: hidden,
            eps: config.layer_norm_eps as f32,
        })
    }

    pub fn hidden_size(&self) -> usize {
        self.hidden_size
    }

    /// Longest sequence the position embeddings cover.
    fn max_positions(&self) -> usize {
        self.position_and_type_embeddings.len() / self.hidden_size
    }

    /// Contextual token vectors of a batch, `[batch * seq_len, hidden]` (padding rows included, to be ignored).
    pub fn forward(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let dims = AttentionDims {
            batch: batch.batch_size(),
            seq_len: batch.seq_len,
            heads: self.heads,
            head_dim: self.head_dim,
        };
        let mut x = self.embed(batch)?;
        for layer in &self.layers {
            x = layer.forward(&x, &batch.lengths, dims, self.eps)?;
        }
        Ok(x)
    }

    /// Word + position + token type embeddings, layer-normalised: `[batch * seq_len, hidden]`.
    fn embed(&self, batch: &PaddedBatch) -> Result<Tensor> {
        let hidden = self.hidden_size;
        let vocab = self.word_embeddings.len() / hidden;
        if batch.seq_len > self.max_positions() {
            bail!("sequence of {} tokens exceeds the {} position embeddings", batch.seq_len, self.max_positions());
        }
        if let Some(bad) = batch.ids.iter().find(|&&id| id as usize >= vocab) {
            bail!("token id {bad} outside the vocabulary of {vocab}");
        }
        let mut x = vec![0.0f32; batch.ids.len() * hidden];
        x.par_chunks_mut(hidden).zip(&batch.ids).enumerate().with_min_len(64).for_each(|(row, (out, &id))| {
            let position = row % batch.seq_len;
            let word = &self.word_embeddings[id as usize * hidden..][..hidden];
            let position_and_type = &self.position_and_type_embeddings[position * hidden..][..hidden];
            out.iter_mut().zip(word).zip(position_and_type).for_each(|((o, w), p)| *o = w + p);
            layer_norm_in_place(out, &self.embedding_norm.gamma, &self.embedding_norm.beta, self.eps);
        });
        Tensor::from_vec(x, (batch.ids.len(), hidden), &Device::Cpu)
    }
}

impl EncoderLayer {
    /// `x`: `[batch * seq_len, hidden]` in and out.
    fn forward(&self, x: &Tensor, lengths: &[usize], dims: AttentionDims, eps: f32) -> Result<Tensor> {
        let context = self.self_attention(x, lengths, dims)?;
        let attended = self.attention_output.project(&context)?;
        attended.inplace_op2(x, &self.add_and_norm(&self.attention_output, &self.attention_norm, eps))?;
        let hidden = self.intermediate.project(&attended)?;
        hidden.inplace_op1(&BiasGelu { bias: &self.intermediate.bias })?;
        let output = self.output.project(&hidden)?;
        output.inplace_op2(&attended, &self.add_and_norm(&self.output, &self.output_norm, eps))?;
        Ok(output)
    }

    fn add_and_norm<'a>(&self, dense: &'a Dense, norm: &'a NormWeights, eps: f32) -> BiasResidualLayerNorm<'a> {
        BiasResidualLayerNorm { bias: &dense.bias, gamma: &norm.gamma, beta: &norm.beta, eps }
    }

    /// Multi-head scaled dot-product attention over the real tokens; returns the heads' contexts side by side,
    /// `[batch * seq_len, hidden]`.
    fn self_attention(&self, x: &Tensor, lengths: &[usize], dims: AttentionDims) -> Result<Tensor> {
        let projected = self.query_key_value.project(x)?;
        // [3, batch, heads, seq_len, head_dim]
        let heads = projected.apply_op1_no_bwd(&SplitHeads { bias: &self.query_key_value.bias, dims })?;
        let (query, key, value) = (heads.get(0)?, heads.get(1)?, heads.get(2)?);
        let weights = query.matmul(&key.t()?)?;
        weights.inplace_op1(&MaskedSoftmax { lengths, dims })?;
        weights.matmul(&value)?.apply_op1_no_bwd(&MergeHeads { dims })
    }
}
