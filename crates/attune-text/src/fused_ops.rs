//! Custom candle operations for the encoder's steps between matmuls, each one pass over memory and spread over all
//! cores with rayon (candle's own element-wise CPU ops run on one thread): bias + GELU, bias + residual + layer
//! norm, splitting the fused query/key/value projection into heads, softmax over real tokens only, and merging
//! the heads back.

use candle_core::{CpuStorage, CustomOp1, InplaceOp1, InplaceOp2, Layout, Result, Shape, bail};
use rayon::prelude::*;

use crate::fast_math::{bias_gelu_row, exp_non_positive, layer_norm_in_place};

/// Smallest share of a parallel loop given to one task, in floats: below this, scheduling costs more than it saves.
const MIN_FLOATS_PER_TASK: usize = 8192;

fn min_rows_per_task(row_len: usize) -> usize {
    (MIN_FLOATS_PER_TASK / row_len.max(1)).max(1)
}

fn contiguous<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let (CpuStorage::F32(values), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
        bail!("{op}: expects a contiguous f32 tensor")
    };
    Ok(&values[start..end])
}

fn contiguous_mut<'a>(storage: &'a mut CpuStorage, layout: &Layout, op: &str) -> Result<&'a mut [f32]> {
    let (CpuStorage::F32(values), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
        bail!("{op}: expects a contiguous f32 tensor")
    };
    Ok(&mut values[start..end])
}

fn check_row_len(layout: &Layout, expected: usize, op: &str) -> Result<()> {
    match layout.dims().last() {
        Some(&len) if len == expected => Ok(()),
        _ => bail!("{op}: rows of {expected} expected, got shape {:?}", layout.dims()),
    }
}

/// In place: `x <- gelu(x + bias)`, row by row.
pub(crate) struct BiasGelu<'a> {
    pub bias: &'a [f32],
}

impl InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        check_row_len(layout, self.bias.len(), self.name())?;
        let values = contiguous_mut(storage, layout, self.name())?;
        let width = self.bias.len();
        values
            .par_chunks_mut(width)
            .with_min_len(min_rows_per_task(width))
            .for_each(|row| bias_gelu_row(row, self.bias));
        Ok(())
    }
}

/// In place on the projection: `x <- layer_norm(x + bias + residual)`, the add & norm after each BERT sub-layer.
pub(crate) struct BiasResidualLayerNorm<'a> {
    pub bias: &'a [f32],
    pub gamma: &'a [f32],
    pub beta: &'a [f32],
    pub eps: f32,
}

impl InplaceOp2 for BiasResidualLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "bias-residual-layer-norm"
    }

    fn cpu_fwd(&self, projection: &mut CpuStorage, l1: &Layout, residual: &CpuStorage, l2: &Layout) -> Result<()> {
        check_row_len(l1, self.bias.len(), self.name())?;
        if l1.dims() != l2.dims() {
            bail!("{}: shapes {:?} and {:?} differ", self.name(), l1.dims(), l2.dims());
        }
        let residual = contiguous(residual, l2, self.name())?;
        let values = contiguous_mut(projection, l1, self.name())?;
        let width = self.bias.len();
        values.par_chunks_mut(width).zip(residual.par_chunks(width)).with_min_len(min_rows_per_task(width)).for_each(
            |(row, residual_row)| {
                for ((x, r), b) in row.iter_mut().zip(residual_row).zip(self.bias) {
                    *x += r + b;
                }
                layer_norm_in_place(row, self.gamma, self.beta, self.eps);
            },
        );
        Ok(())
    }
}

/// Sizes of the attention of one batch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AttentionDims {
    pub batch: usize,
    pub seq_len: usize,
    pub heads: usize,
    pub head_dim: usize,
}

impl AttentionDims {
    fn hidden(&self) -> usize {
        self.heads * self.head_dim
    }
}

/// `[batch * seq_len, 3 * hidden]` query/key/value projections plus their bias, to `[3, batch, heads, seq_len,
/// head_dim]`: each head's queries, keys and values contiguous for the batched attention matmuls.
pub(crate) struct SplitHeads<'a> {
    pub bias: &'a [f32],
    pub dims: AttentionDims,
}

impl CustomOp1 for SplitHeads<'_> {
    fn name(&self) -> &'static str {
        "split-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let AttentionDims { batch, seq_len, heads, head_dim } = self.dims;
        let hidden = self.dims.hidden();
        check_row_len(layout, 3 * hidden, self.name())?;
        let input = contiguous(storage, layout, self.name())?;
        if input.len() != batch * seq_len * 3 * hidden {
            bail!("{}: {} values for {:?}", self.name(), input.len(), self.dims);
        }
        let block_len = seq_len * head_dim;
        let mut output = vec![0.0f32; input.len()];
        output.par_chunks_mut(block_len).with_min_len(min_rows_per_task(block_len)).enumerate().for_each(
            |(block, out)| {
                // block = (part * batch + sentence) * heads + head
                let (head, sentence, part) = (block % heads, (block / heads) % batch, block / (heads * batch));
                let column = part * hidden + head * head_dim;
                let bias = &self.bias[column..column + head_dim];
                for (token, out_row) in out.chunks_exact_mut(head_dim).enumerate() {
                    let start = (sentence * seq_len + token) * 3 * hidden + column;
                    let source = &input[start..start + head_dim];
                    out_row.iter_mut().zip(source).zip(bias).for_each(|((o, s), b)| *o = s + b);
                }
            },
        );
        Ok((CpuStorage::F32(output), Shape::from((3, batch, heads, seq_len, head_dim))))
    }
}

/// In place on `[batch, heads, seq_len, seq_len]` attention scores: softmax over each sentence's real tokens, 0 for
/// its padding keys, so padding never receives attention.
pub(crate) struct MaskedSoftmax<'a> {
    pub lengths: &'a [usize],
    pub dims: AttentionDims,
}

impl InplaceOp1 for MaskedSoftmax<'_> {
    fn name(&self) -> &'static str {
        "masked-softmax"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let AttentionDims { batch, seq_len, heads, .. } = self.dims;
        if layout.dims() != [batch, heads, seq_len, seq_len] || self.lengths.len() != batch {
            bail!("{}: shape {:?} does not match {:?}", self.name(), layout.dims(), self.dims);
        }
        let scores = contiguous_mut(storage, layout, self.name())?;
        let rows_per_sentence = heads * seq_len;
        scores.par_chunks_mut(seq_len).with_min_len(min_rows_per_task(seq_len)).enumerate().for_each(
            |(row, values)| {
                let length = self.lengths[row / rows_per_sentence].clamp(1, seq_len);
                let (real, padding) = values.split_at_mut(length);
                let max = real.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                real.iter_mut().for_each(|v| *v = exp_non_positive(*v - max));
                let inverse_sum = 1.0 / real.iter().sum::<f32>();
                real.iter_mut().for_each(|v| *v *= inverse_sum);
                padding.fill(0.0);
            },
        );
        Ok(())
    }
}

/// `[batch, heads, seq_len, head_dim]` attention contexts to `[batch * seq_len, hidden]`, heads side by side.
pub(crate) struct MergeHeads {
    pub dims: AttentionDims,
}

impl CustomOp1 for MergeHeads {
    fn name(&self) -> &'static str {
        "merge-heads"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> Result<(CpuStorage, Shape)> {
        let AttentionDims { batch, seq_len, heads, head_dim } = self.dims;
        let hidden = self.dims.hidden();
        if layout.dims() != [batch, heads, seq_len, head_dim] {
            bail!("{}: shape {:?} does not match {:?}", self.name(), layout.dims(), self.dims);
        }
        let input = contiguous(storage, layout, self.name())?;
        let mut output = vec![0.0f32; input.len()];
        output.par_chunks_mut(hidden).with_min_len(min_rows_per_task(hidden)).enumerate().for_each(|(row, out)| {
            let (sentence, token) = (row / seq_len, row % seq_len);
            for (head, out_head) in out.chunks_exact_mut(head_dim).enumerate() {
                let start = ((sentence * heads + head) * seq_len + token) * head_dim;
                out_head.copy_from_slice(&input[start..start + head_dim]);
            }
        });
        Ok((CpuStorage::F32(output), Shape::from((batch * seq_len, hidden))))
    }
}
