//! Latency of one real-time session-kNN call on the YOOCHOOSE 100k sample: the index is built from the
//! training sessions, then each iteration recommends 20 items for the next test-session prefix (cycling
//! over all prefixes). Data from `$ATTUNE_DATASETS` (default `../shared/data` from the repository root).

use std::collections::HashMap;
use std::hint::black_box;
use std::path::PathBuf;

use attune_recs::{PastSession, SessionKnn, SessionKnnConfig};
use criterion::{Criterion, criterion_group, criterion_main};

fn data_dir() -> PathBuf {
    std::env::var_os("ATTUNE_DATASETS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data"))
}

/// Sessions (time order) of one YOOCHOOSE file; items interned into `ids` (new ones only when `grow`).
fn sessions(file: &str, ids: &mut HashMap<u64, u32>, grow: bool) -> Vec<PastSession> {
    let path = data_dir().join("session/yoochoose_100k").join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut by_session: HashMap<u64, Vec<(i64, u32)>> = HashMap::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        let (s, i, t): (u64, u64, f64) = (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2].parse().unwrap());
        let next = ids.len() as u32;
        let item = if grow { Some(*ids.entry(i).or_insert(next)) } else { ids.get(&i).copied() };
        if let Some(item) = item {
            by_session.entry(s).or_default().push(((t * 1000.0) as i64, item));
        }
    }
    let mut out: Vec<(u64, PastSession)> = by_session
        .into_iter()
        .map(|(id, mut c)| {
            c.sort_by_key(|x| x.0);
            (id, PastSession { time_ms: c[0].0, items: c.into_iter().map(|x| x.1).collect() })
        })
        .collect();
    out.sort_by_key(|(id, s)| (s.time_ms, *id));
    out.into_iter().map(|(_, s)| s).collect()
}

fn session_knn(c: &mut Criterion) {
    let mut ids = HashMap::new();
    let train = sessions("yoochoose-clicks-100k_train_full.txt", &mut ids, true);
    let test = sessions("yoochoose-clicks-100k_test.txt", &mut ids, false);
    let config = SessionKnnConfig { k: 100, position_decay: 1.0, neighbour_decay: 4.0, ..SessionKnnConfig::default() };
    let model = SessionKnn::fit(&train, ids.len(), config).unwrap();
    let prefixes: Vec<&[u32]> = test.iter().flat_map(|s| (1..s.items.len()).map(move |p| &s.items[..p])).collect();
    let mut next = 0usize;
    c.bench_function("session_knn_recommend_20_yoochoose100k", |b| {
        b.iter(|| {
            let prefix = prefixes[next % prefixes.len()];
            next += 1;
            black_box(model.recommend(black_box(prefix), 20, &[]))
        })
    });
}

criterion_group!(benches, session_knn);
criterion_main!(benches);
