//! Fits ALS on a triplet file (first line "n_users n_items", then "user item value" lines, the format
//! `attune eval recs --peer` writes for the peer script) a few times and prints the fit seconds: a quick way
//! to time the ALS kernels on a real matrix. Usage: `als_fit FILE [factors] [regularization] [alpha] [fits]`.

use std::io::BufRead;
use std::time::Instant;

use attune_recs::{Als, AlsConfig, CsrMatrix, Recommender};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let path = args.get(1).expect("usage: als_fit FILE [factors] [regularization] [alpha] [fits]");
    let arg = |i: usize, default: f32| args.get(i).map_or(default, |v| v.parse().expect("a number"));
    let file = std::io::BufReader::new(std::fs::File::open(path).expect("readable file"));
    let mut lines = file.lines().map(|l| l.expect("text"));
    let header = lines.next().expect("a header line");
    let mut dims = header.split_whitespace().map(|v| v.parse::<usize>().expect("dimensions"));
    let (n_users, n_items) = (dims.next().expect("n_users"), dims.next().expect("n_items"));
    let triplets: Vec<(u32, u32, f32)> = lines
        .map(|l| {
            let mut v = l.split_whitespace();
            let mut next = || v.next().expect("three values");
            (next().parse().expect("user"), next().parse().expect("item"), next().parse().expect("value"))
        })
        .collect();
    let train = CsrMatrix::from_triplets(n_users, n_items, &triplets).expect("a valid matrix");
    let config = AlsConfig {
        factors: arg(2, 64.0) as usize,
        regularization: arg(3, 10.0),
        alpha: arg(4, 1.0),
        ..AlsConfig::default()
    };
    println!("{n_users} × {n_items}, {} interactions, {config:?}", train.nnz());
    for seed in 0..arg(5, 5.0) as u64 {
        let mut als = Als::new(AlsConfig { seed: 42 + seed, ..config.clone() }).expect("valid config");
        let clock = Instant::now();
        als.fit(&train).expect("fit");
        println!("fit {:.3} s", clock.elapsed().as_secs_f64());
    }
}
