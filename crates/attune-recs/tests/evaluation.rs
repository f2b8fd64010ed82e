//! Metrics on hand-computed cases and the split protocols.

use attune_recs::evaluation::{evaluate_lists, rank_metrics};
use attune_recs::{CsrMatrix, Popularity, Purchase, Recommender, evaluate, last_basket_split, leave_one_out};

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn single_target_metrics() {
    // Target at rank 3: HR 1, recall 1, NDCG 1/log2(4) = 0.5, MRR 1/3.
    let m = rank_metrics(&[7, 8, 9, 10], &[9], 10);
    assert!(close(m.hr, 1.0) && close(m.recall, 1.0) && close(m.ndcg, 0.5) && close(m.mrr, 1.0 / 3.0));
    // Beyond the cut-off: nothing.
    let m = rank_metrics(&[7, 8, 9, 10], &[10], 3);
    assert_eq!((m.hr, m.ndcg, m.mrr), (0.0, 0.0, 0.0));
}

#[test]
fn multi_target_metrics() {
    // Targets {1, 4, 6}; list [1, 2, 4]; K = 3. Hits at ranks 1 and 3.
    let m = rank_metrics(&[1, 2, 4], &[6, 4, 1], 3);
    let dcg = 1.0 + 1.0 / 4f64.log2();
    let idcg = 1.0 + 1.0 / 3f64.log2() + 1.0 / 4f64.log2();
    assert!(close(m.recall, 2.0 / 3.0));
    assert!(close(m.ndcg, dcg / idcg));
    assert!(close(m.mrr, 1.0));
    // Ideal DCG is capped at K: 2 targets, K = 1, hit at rank 1 → NDCG 1.
    assert!(close(rank_metrics(&[5], &[5, 6], 1).ndcg, 1.0));
}

#[test]
fn evaluate_averages_and_reports_coverage_and_popularity() {
    // Item popularity: 0 → 3 users, 1 → 2, 2 → 1, 3 → 0.
    let train = CsrMatrix::from_rows_binary(4, &[vec![0, 1, 2], vec![0, 1], vec![0], vec![]]).unwrap();
    let mut pop = Popularity::new();
    pop.fit(&train).unwrap();
    // User 2 (saw 0) gets [1, 2]; user 3 (saw nothing) gets [0, 1].
    let targets = vec![(2u32, vec![2u32]), (3, vec![3])];
    let r = evaluate(&pop, &train, &targets, 2).unwrap();
    assert_eq!(r.users, 2);
    assert!(close(r.metrics.hr, 0.5));
    assert!(close(r.metrics.ndcg, 0.5 / 3f64.log2()));
    assert!(close(r.coverage, 0.75));
    assert!(close(r.mean_popularity, (2.0 + 1.0 + 3.0 + 2.0) / 4.0));
    let again = evaluate_lists(&train, &targets, &[vec![1, 2], vec![0, 1]], 2).unwrap();
    assert_eq!(again, r);
}

#[test]
fn leave_one_out_holds_out_last_and_second_to_last() {
    let seqs = vec![vec![0, 1, 2, 3], vec![4, 0], vec![1]];
    let s = leave_one_out(&seqs, 5).unwrap();
    assert_eq!(s.test_targets, vec![(0, vec![3]), (1, vec![0])]);
    assert_eq!(s.valid_targets, vec![(0, vec![2])]);
    assert_eq!(s.test_train.row(0).indices, &[0, 1, 2]);
    assert_eq!(s.test_train.row(1).indices, &[4]);
    assert_eq!(s.valid_train.row(0).indices, &[0, 1]);
    assert!(s.valid_train.row(1).is_empty());
    assert!(s.test_train.row(2).is_empty());
}

#[test]
fn last_basket_split_keeps_only_new_items_of_the_last_basket() {
    let p = |user, item, basket, time| Purchase { user, item, basket, time };
    let purchases = vec![
        p(0, 0, 0, 1),
        p(0, 1, 0, 1),
        p(0, 1, 1, 5),
        p(0, 2, 1, 5),
        p(1, 3, 2, 2), // single basket: all training
        p(2, 0, 3, 9),
        p(2, 0, 4, 3), // last basket (time 9) holds only a repeat: no targets
    ];
    let s = last_basket_split(&purchases, 3, 4).unwrap();
    assert_eq!(s.targets, vec![(0, vec![2])]);
    assert_eq!(s.train.row(0).indices, &[0, 1]);
    assert_eq!(s.train.row(1).indices, &[3]);
    assert_eq!(s.train.get(2, 0), 1.0);
    assert_eq!(s.train_purchases.len(), 4);
}
