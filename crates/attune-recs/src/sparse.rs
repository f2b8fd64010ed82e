//! A compressed-sparse-row matrix of `f32` on dense `u32` indices: the user × item interaction matrix
//! every model trains on, and its transpose (item × user).

use serde::{Deserialize, Serialize};

use crate::error::RecsError;

/// One row of a [`CsrMatrix`]: sorted column indices and their values.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub indices: &'a [u32],
    pub values: &'a [f32],
}

impl<'a> Row<'a> {
    /// A row with no entries (a user with no history).
    pub const EMPTY: Row<'static> = Row { indices: &[], values: &[] };

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }

    /// `(column, value)` pairs in column order.
    pub fn iter(self) -> impl Iterator<Item = (u32, f32)> + 'a {
        self.indices.iter().copied().zip(self.values.iter().copied())
    }
}

/// Compressed sparse rows: row `r` holds `indices[indptr[r]..indptr[r + 1]]` (strictly increasing) and
/// the matching `values`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CsrParts")]
pub struct CsrMatrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

/// A [`CsrMatrix`] as read from a serialized model, before its structure is checked.
#[derive(Deserialize)]
struct CsrParts {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<usize>,
    indices: Vec<u32>,
    values: Vec<f32>,
}

impl TryFrom<CsrParts> for CsrMatrix {
    type Error = RecsError;

    /// Accepts only a well-formed matrix, so a damaged snapshot cannot index out of bounds later.
    fn try_from(parts: CsrParts) -> Result<Self, RecsError> {
        let CsrParts { n_rows, n_cols, indptr, indices, values } = parts;
        let broken = |what: &str| RecsError::DimensionMismatch(format!("serialized matrix: {what}"));
        if indptr.len() != n_rows + 1 || indptr.first() != Some(&0) {
            return Err(broken("row pointers do not match the row count"));
        }
        if indptr.last() != Some(&indices.len()) || indices.len() != values.len() {
            return Err(broken("row pointers, indices and values disagree in length"));
        }
        for r in 0..n_rows {
            let (start, end) = (indptr[r], indptr[r + 1]);
            if start > end {
                return Err(broken("row pointers decrease"));
            }
            let row = &indices[start..end];
            if row.iter().any(|&c| c as usize >= n_cols) || row.windows(2).any(|w| w[0] >= w[1]) {
                return Err(broken("column indices out of range or not increasing"));
            }
        }
        if values.iter().any(|v| !v.is_finite()) {
            return Err(broken("non-finite value"));
        }
        Ok(Self { n_rows, n_cols, indptr, indices, values })
    }
}

impl CsrMatrix {
    /// An `n_rows × n_cols` matrix without entries.
    pub fn empty(n_rows: usize, n_cols: usize) -> Self {
        Self { n_rows, n_cols, indptr: vec![0; n_rows + 1], indices: Vec::new(), values: Vec::new() }
    }

    /// Builds a matrix from `(row, col, value)` triplets; duplicates are summed, and entries whose sum is
    /// not strictly positive are dropped (a negative signal cancels a positive one; the matrix holds
    /// only what a shopper is believed to like).
    pub fn from_triplets(n_rows: usize, n_cols: usize, triplets: &[(u32, u32, f32)]) -> Result<Self, RecsError> {
        let mut counts = vec![0usize; n_rows + 1];
        for &(r, c, v) in triplets {
            check(r as usize, n_rows, "row")?;
            check(c as usize, n_cols, "column")?;
            if !v.is_finite() {
                return Err(RecsError::Numerical(format!("non-finite value at ({r}, {c})")));
            }
            counts[r as usize + 1] += 1;
        }
        for i in 0..n_rows {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut cols = vec![0u32; triplets.len()];
        let mut vals = vec![0f32; triplets.len()];
        for &(r, c, v) in triplets {
            let slot = &mut next[r as usize];
            cols[*slot] = c;
            vals[*slot] = v;
            *slot += 1;
        }
        let mut indptr = Vec::with_capacity(n_rows + 1);
        indptr.push(0);
        let mut indices = Vec::with_capacity(triplets.len());
        let mut values = Vec::with_capacity(triplets.len());
        let mut pairs: Vec<(u32, f32)> = Vec::new();
        for r in 0..n_rows {
            pairs.clear();
            pairs.extend((counts[r]..counts[r + 1]).map(|k| (cols[k], vals[k])));
            pairs.sort_by_key(|p| p.0);
            let mut k = 0;
            while k < pairs.len() {
                let col = pairs[k].0;
                let mut sum = 0f32;
                while k < pairs.len() && pairs[k].0 == col {
                    sum += pairs[k].1;
                    k += 1;
                }
                if sum > 0.0 {
                    indices.push(col);
                    values.push(sum);
                }
            }
            indptr.push(indices.len());
        }
        Ok(Self { n_rows, n_cols, indptr, indices, values })
    }

    /// A matrix from per-row `(column, value)` lists in any order, values kept as given (negative ones too);
    /// a repeated column, a column out of range or a non-finite value is an error.
    pub fn from_rows(n_cols: usize, rows: &[Vec<(u32, f32)>]) -> Result<Self, RecsError> {
        let mut parts =
            CsrParts { n_rows: rows.len(), n_cols, indptr: vec![0], indices: Vec::new(), values: Vec::new() };
        let mut row: Vec<(u32, f32)> = Vec::new();
        for given in rows {
            row.clone_from(given);
            row.sort_by_key(|(c, _)| *c);
            parts.indices.extend(row.iter().map(|(c, _)| *c));
            parts.values.extend(row.iter().map(|(_, v)| *v));
            parts.indptr.push(parts.indices.len());
        }
        Self::try_from(parts)
    }

    /// The square item × item matrix in new indices: row and column `old` become `new_of_old[old]`, and those
    /// mapped to `None` are left out (with their entries). `new_of_old` must be one-to-one onto `0..n_new`.
    pub fn reindex_square(&self, new_of_old: &[Option<u32>], n_new: usize) -> Result<Self, RecsError> {
        if new_of_old.len() != self.n_rows || self.n_rows != self.n_cols {
            return Err(RecsError::DimensionMismatch(format!(
                "reindexing a {}×{} matrix with {} indices",
                self.n_rows,
                self.n_cols,
                new_of_old.len()
            )));
        }
        let mut rows = vec![Vec::new(); n_new];
        for (old, new) in new_of_old.iter().enumerate() {
            let Some(new) = new else { continue };
            let row = rows
                .get_mut(*new as usize)
                .ok_or_else(|| RecsError::DimensionMismatch(format!("index {new} ≥ {n_new}")))?;
            *row = self.row(old).iter().filter_map(|(c, v)| Some((new_of_old[c as usize]?, v))).collect();
        }
        Self::from_rows(n_new, &rows)
    }

    /// Adds Σ over `(row, weight)` of weight · row's entries into `out` (indexed by column): an item × item
    /// model's scores for a weighted history.
    pub fn add_weighted_rows(&self, rows: impl Iterator<Item = (u32, f32)>, out: &mut [f32]) {
        for (r, weight) in rows {
            for (c, v) in self.row(r as usize).iter() {
                out[c as usize] += weight * v;
            }
        }
    }

    /// A binary matrix from per-row column lists (duplicates collapse to one entry of value 1).
    pub fn from_rows_binary(n_cols: usize, rows: &[Vec<u32>]) -> Result<Self, RecsError> {
        let triplets: Vec<(u32, u32, f32)> =
            rows.iter().enumerate().flat_map(|(r, cols)| cols.iter().map(move |&c| (r as u32, c, 1.0))).collect();
        let mut m = Self::from_triplets(rows.len(), n_cols, &triplets)?;
        m.values.iter_mut().for_each(|v| *v = 1.0);
        Ok(m)
    }

    pub fn n_rows(&self) -> usize {
        self.n_rows
    }

    pub fn n_cols(&self) -> usize {
        self.n_cols
    }

    /// Number of stored entries.
    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    /// Row `r`, or an empty row past the end (a user the matrix has never seen).
    pub fn row(&self, r: usize) -> Row<'_> {
        if r >= self.n_rows {
            return Row::EMPTY;
        }
        let (a, b) = (self.indptr[r], self.indptr[r + 1]);
        Row { indices: &self.indices[a..b], values: &self.values[a..b] }
    }

    /// The stored value at `(r, c)`, zero when absent.
    pub fn get(&self, r: usize, c: u32) -> f32 {
        let row = self.row(r);
        row.indices.binary_search(&c).map(|k| row.values[k]).unwrap_or(0.0)
    }

    /// The transpose (item × user from user × item).
    pub fn transpose(&self) -> Self {
        let mut counts = vec![0usize; self.n_cols + 1];
        for &c in &self.indices {
            counts[c as usize + 1] += 1;
        }
        for i in 0..self.n_cols {
            counts[i + 1] += counts[i];
        }
        let mut next = counts.clone();
        let mut indices = vec![0u32; self.nnz()];
        let mut values = vec![0f32; self.nnz()];
        for r in 0..self.n_rows {
            for (c, v) in self.row(r).iter() {
                let slot = &mut next[c as usize];
                indices[*slot] = r as u32;
                values[*slot] = v;
                *slot += 1;
            }
        }
        Self { n_rows: self.n_cols, n_cols: self.n_rows, indptr: counts, indices, values }
    }

    /// The same pattern with every value replaced by `f(value)`; non-positive results are kept as given.
    pub fn map_values(&self, f: impl Fn(f32) -> f32) -> Self {
        let mut m = self.clone();
        m.values.iter_mut().for_each(|v| *v = f(*v));
        m
    }

    /// Number of stored entries per column (e.g. how many users interacted with each item).
    pub fn column_counts(&self) -> Vec<u32> {
        let mut counts = vec![0u32; self.n_cols];
        for &c in &self.indices {
            counts[c as usize] += 1;
        }
        counts
    }

    /// Sum of values per column.
    pub fn column_sums(&self) -> Vec<f32> {
        let mut sums = vec![0f32; self.n_cols];
        for (&c, &v) in self.indices.iter().zip(&self.values) {
            sums[c as usize] += v;
        }
        sums
    }

    /// Every entry as `(row, col, value)`.
    pub fn triplets(&self) -> impl Iterator<Item = (u32, u32, f32)> + '_ {
        (0..self.n_rows).flat_map(move |r| self.row(r).iter().map(move |(c, v)| (r as u32, c, v)))
    }
}

fn check(index: usize, size: usize, what: &'static str) -> Result<(), RecsError> {
    if index >= size { Err(RecsError::OutOfRange { what, index, size }) } else { Ok(()) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reindexing_moves_rows_and_columns_and_drops_the_unmapped() {
        let m = CsrMatrix::from_rows(3, &[vec![(1, 1.0), (2, 2.0)], vec![(0, 3.0), (2, 4.0)], vec![(0, 5.0)]]).unwrap();
        // Item 1 goes, 0 and 2 swap places.
        let r = m.reindex_square(&[Some(1), None, Some(0)], 2).unwrap();
        assert_eq!((r.n_rows(), r.n_cols()), (2, 2));
        assert_eq!((r.row(0).indices, r.row(0).values), (&[1u32][..], &[5.0f32][..]));
        assert_eq!((r.row(1).indices, r.row(1).values), (&[0u32][..], &[2.0f32][..]));
        assert!(m.reindex_square(&[Some(0)], 1).is_err(), "one index per row");
    }

    #[test]
    fn rows_keep_signed_values_sorted_and_refuse_repeats() {
        let m = CsrMatrix::from_rows(4, &[vec![(3, -1.5), (0, 2.0)], vec![], vec![(1, 0.5)]]).unwrap();
        assert_eq!((m.n_rows(), m.n_cols(), m.nnz()), (3, 4, 3));
        assert_eq!(m.row(0).indices, &[0, 3]);
        assert_eq!(m.row(0).values, &[2.0, -1.5]);
        assert!(m.row(1).is_empty());
        assert!(CsrMatrix::from_rows(4, &[vec![(1, 1.0), (1, 2.0)]]).is_err(), "a repeated column");
        assert!(CsrMatrix::from_rows(4, &[vec![(4, 1.0)]]).is_err(), "a column out of range");
        assert!(CsrMatrix::from_rows(4, &[vec![(0, f32::NAN)]]).is_err(), "a non-finite value");
    }

    #[test]
    fn triplets_sum_duplicates_and_drop_non_positive() {
        let m = CsrMatrix::from_triplets(2, 3, &[(0, 2, 1.0), (0, 0, 2.0), (0, 2, 0.5), (1, 1, 1.0), (1, 1, -1.0)])
            .unwrap();
        assert_eq!(m.row(0).indices, &[0, 2]);
        assert_eq!(m.row(0).values, &[2.0, 1.5]);
        assert!(m.row(1).is_empty());
        assert_eq!(m.get(0, 2), 1.5);
        let t = m.transpose();
        assert_eq!(t.n_rows(), 3);
        assert_eq!(t.row(2).indices, &[0]);
        assert_eq!(t.transpose(), m);
    }

    #[test]
    fn out_of_range_is_an_error() {
        assert!(matches!(CsrMatrix::from_triplets(1, 1, &[(0, 1, 1.0)]), Err(RecsError::OutOfRange { .. })));
    }
}
