//! Evaluation protocols that turn raw histories into a training matrix and held-out targets:
//! leave-one-out on sequences (last item = test, second-to-last = validation) and the last-basket
//! split of purchase histories.

use std::collections::BTreeSet;

use crate::error::RecsError;
use crate::sparse::CsrMatrix;

/// Leave-one-out on time-ordered sequences, as in SASRec / S3-Rec.
#[derive(Debug, Clone)]
pub struct LeaveOneOutSplit {
    /// All but the last two items of each sequence (binary).
    pub valid_train: CsrMatrix,
    /// The second-to-last item, for users with at least 3 items.
    pub valid_targets: Vec<(u32, Vec<u32>)>,
    /// All but the last item (binary).
    pub test_train: CsrMatrix,
    /// The last item, for users with at least 2 items.
    pub test_targets: Vec<(u32, Vec<u32>)>,
}

/// Splits `sequences[user]` (item indices in time order, all `< n_items`).
pub fn leave_one_out(sequences: &[Vec<u32>], n_items: usize) -> Result<LeaveOneOutSplit, RecsError> {
    let cut = |drop: usize| -> Vec<Vec<u32>> {
        sequences.iter().map(|s| if s.len() > drop { s[..s.len() - drop].to_vec() } else { s.clone() }).collect()
    };
    let targets = |back: usize, min_len: usize| -> Vec<(u32, Vec<u32>)> {
        sequences
            .iter()
            .enumerate()
            .filter(|(_, s)| s.len() >= min_len)
            .map(|(u, s)| (u as u32, vec![s[s.len() - back]]))
            .collect()
    };
    let shorten = |rows: Vec<Vec<u32>>, min_len: usize| -> Vec<Vec<u32>> {
        rows.into_iter().zip(sequences).map(|(r, s)| if s.len() >= min_len { r } else { Vec::new() }).collect()
    };
    Ok(LeaveOneOutSplit {
        valid_train: CsrMatrix::from_rows_binary(n_items, &shorten(cut(2), 3))?,
        valid_targets: targets(2, 3),
        test_train: CsrMatrix::from_rows_binary(n_items, &shorten(cut(1), 2))?,
        test_targets: targets(1, 2),
    })
}

/// One purchased line: who, what, in which basket (order), and a time key that orders baskets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purchase {
    pub user: u32,
    pub item: u32,
    pub basket: u32,
    pub time: i64,
}

/// Training matrix and held-out next-basket targets.
#[derive(Debug, Clone)]
pub struct LastBasketSplit {
    /// users × items; value = number of training baskets that contain the item.
    pub train: CsrMatrix,
    /// Each evaluated user's last-basket items that are not already in their training history.
    pub targets: Vec<(u32, Vec<u32>)>,
    /// The purchases kept for training (split again to get a validation set).
    pub train_purchases: Vec<Purchase>,
}

/// Holds out each user's last basket (latest `(time, basket)`) for users with at least 2 baskets.
/// Targets are only the items new to the user (the ranking excludes training items, so repurchases could
/// never be hit); users whose last basket has no new item are not evaluated.
pub fn last_basket_split(purchases: &[Purchase], n_users: usize, n_items: usize) -> Result<LastBasketSplit, RecsError> {
    let mut last: Vec<Option<(i64, u32)>> = vec![None; n_users];
    let mut baskets: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n_users];
    for p in purchases {
        let u = p.user as usize;
        if u >= n_users || p.item as usize >= n_items {
            return Err(RecsError::OutOfRange { what: "purchase", index: u.max(p.item as usize), size: n_users });
        }
        baskets[u].insert(p.basket);
        let key = (p.time, p.basket);
        if last[u].is_none_or(|l| key > l) {
            last[u] = Some(key);
        }
    }
    let held =
        |p: &Purchase| baskets[p.user as usize].len() >= 2 && last[p.user as usize].map(|l| l.1) == Some(p.basket);
    let train_purchases: Vec<Purchase> = purchases.iter().filter(|p| !held(p)).copied().collect();
    let mut pairs: BTreeSet<(u32, u32, u32)> = BTreeSet::new();
    for p in &train_purchases {
        pairs.insert((p.user, p.item, p.basket));
    }
    let triplets: Vec<(u32, u32, f32)> = pairs.iter().map(|&(u, i, _)| (u, i, 1.0)).collect();
    let train = CsrMatrix::from_triplets(n_users, n_items, &triplets)?;
    let mut target_sets: Vec<BTreeSet<u32>> = vec![BTreeSet::new(); n_users];
    for p in purchases.iter().filter(|p| held(p)) {
        if train.get(p.user as usize, p.item) == 0.0 {
            target_sets[p.user as usize].insert(p.item);
        }
    }
    let targets = target_sets
        .into_iter()
        .enumerate()
        .filter(|(_, t)| !t.is_empty())
        .map(|(u, t)| (u as u32, t.into_iter().collect()))
        .collect();
    Ok(LastBasketSplit { train, targets, train_purchases })
}
