//! Token id sequences padded into one rectangular batch.

/// Several sentences' token ids padded to the longest of them.
pub(crate) struct PaddedBatch {
    /// `batch * seq_len` token ids, row-major, 0 (`[PAD]`) after each sentence's end.
    pub ids: Vec<u32>,
    /// Real (unpadded) length of each sentence; attention and pooling only look at these tokens.
    pub lengths: Vec<usize>,
    pub seq_len: usize,
}

impl PaddedBatch {
    pub fn new(sequences: &[&[u32]]) -> Self {
        let seq_len = sequences.iter().map(|ids| ids.len()).max().unwrap_or(0);
        let mut ids = vec![0u32; sequences.len() * seq_len];
        for (row, sequence) in ids.chunks_exact_mut(seq_len.max(1)).zip(sequences) {
            row[..sequence.len()].copy_from_slice(sequence);
        }
        Self { ids, lengths: sequences.iter().map(|ids| ids.len()).collect(), seq_len }
    }

    pub fn batch_size(&self) -> usize {
        self.lengths.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_longest_sentence() {
        let batch = PaddedBatch::new(&[&[101, 7, 102], &[101, 102]]);
        assert_eq!(batch.seq_len, 3);
        assert_eq!(batch.ids, vec![101, 7, 102, 101, 102, 0]);
        assert_eq!(batch.lengths, vec![3, 2]);
        assert_eq!(batch.batch_size(), 2);
    }
}
