//! `attune bench search`: per-query latency of the hybrid search on the 44k-product fashion catalog.
//!
//! The queries are the judged queries of `attune eval search` (the real fashion query log), as logged and, in
//! one row, with one typo each (`eval search`'s "one typo" set). The engine is built with the "title +
//! attributes" protocol (so facets have colours and categories) and title vectors from all-MiniLM-L6-v2 (cached
//! under `target/search-eval/`). Each query runs the whole path: spelling correction and embedding the corrected
//! query with MiniLM (in the "with embedding" rows), query understanding, lexical retrieval, semantic retrieval
//! over all 44k vectors (an exact scan at this size; an HNSW graph built anyway is timed beside it with its
//! recall against the scan), fusion, the personal rerank for a shopper with brand/category/attribute
//! affinities and a session, facet counting over the whole result set, sorting and the first page. Single
//! thread of requests; figures are per query after one warm-up pass. Every product has a category path, so the
//! server would tune the vectors to this catalog: one row times the engine built as it would be then (tuned
//! vectors, `SearchConfig::for_catalog_tuned_vectors`), and the report says how long tuning took. Build with
//! `--release`.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use attune_search::{AnnConfig, Retrieval, SearchConfig, SearchEngine, SearchRequest, ShopperProfile, VectorIndex};

use crate::eval::search::{Protocol, SearchFixture, catalog_items, fit_tuning, with_one_typo};

#[derive(Debug, Clone, clap::Args)]
pub struct SearchBenchArgs {
    /// Directory of the data sets (see ../shared/data/README.md).
    #[arg(long, default_value = "../shared/data", env = "ATTUNE_DATASETS")]
    pub datasets: PathBuf,
    /// Timed passes over the query set.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    #[command(flatten)]
    pub log: crate::config::LogArgs,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    let index = ((sorted.len() as f64 - 1.0) * q).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn summary(name: &str, mut millis: Vec<f64>) -> String {
    millis.sort_by(f64::total_cmp);
    let mean = millis.iter().sum::<f64>() / millis.len().max(1) as f64;
    format!(
        "  {name:<44} p50 {:>7.2} ms   p99 {:>7.2} ms   mean {:>7.2} ms   max {:>7.2} ms   (n={})\n",
        percentile(&millis, 0.5),
        percentile(&millis, 0.99),
        mean,
        millis.last().copied().unwrap_or(0.0),
        millis.len()
    )
}

pub fn search(args: &SearchBenchArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.datasets.is_dir(), "no data sets at {} (use --datasets DIR)", args.datasets.display());
    let fixture = SearchFixture::load(&args.datasets)?;
    let queries = &fixture.judgement.kept;
    anyhow::ensure!(!queries.is_empty(), "no judged queries");
    let items = catalog_items(&fixture.rows, Protocol::TitleAndAttributes)?;
    let build_started = Instant::now();
    let engine = SearchEngine::build(items.clone(), Some(&fixture.title_vectors), SearchConfig::default())?;
    let build_seconds = build_started.elapsed().as_secs_f64();
    // Every product here has a category path, so the server tunes the vectors to the catalog: timed as built.
    let tuning_started = Instant::now();
    let title_vectors: Vec<&[f32]> = fixture.title_vectors.iter().map(Vec::as_slice).collect();
    let (tuning, descriptions) = fit_tuning(&fixture, &items, &title_vectors)?;
    let tuned_vectors = tuning.apply_to_items(&items, &title_vectors)?;
    let tuning_seconds = tuning_started.elapsed().as_secs_f64();
    let tuned_engine = SearchEngine::build(items, Some(&tuned_vectors), SearchConfig::for_catalog_tuned_vectors())?;
    // A shopper who looked at and bought a few items of one kind.
    let liked: Vec<(&attune_core::Item, f32)> =
        engine.items().iter().filter(|item| item.title.contains("Puma")).take(20).map(|item| (item, 3.0)).collect();
    let session = liked.iter().take(3).map(|(item, _)| item.id.clone()).collect::<Vec<_>>();
    let profile = ShopperProfile::from_interactions(liked).with_session(session);

    let run_as = |text: &str, vector: Option<&[f32]>, retrieval: Retrieval, personal: bool| -> anyhow::Result<usize> {
        let mut request = SearchRequest::new(text);
        request.query_vector = vector;
        request.profile = personal.then_some(&profile);
        request.retrieval = retrieval;
        Ok(engine.search(&request)?.total)
    };
    let run = |text: &str, vector: Option<&[f32]>, retrieval: Retrieval| run_as(text, vector, retrieval, true);
    // As the server does it: the spelling corrected first, so the embedding is of the corrected text.
    // Returns the milliseconds the correction and the embedding took.
    let run_embedding_on = |engine: &SearchEngine, text: &str| -> anyhow::Result<(f64, f64)> {
        let started = Instant::now();
        let corrected = engine.correct_spelling(text);
        let corrected_at = started.elapsed().as_secs_f64() * 1e3;
        let searched = corrected.as_deref().unwrap_or(text);
        let embedded = fixture.embedder.embed_one(searched).context("embedding the query")?;
        let embedded_at = started.elapsed().as_secs_f64() * 1e3;
        let mut request = SearchRequest::new(searched);
        request.correct_spelling = false;
        request.query_vector = Some(&embedded);
        request.profile = Some(&profile);
        engine.search(&request)?;
        Ok((corrected_at, embedded_at - corrected_at))
    };
    let run_embedding = |text: &str| run_embedding_on(&engine, text);
    // Warm-up pass.
    for (query, vector) in queries.iter().zip(&fixture.query_vectors) {
        run(&query.text, Some(vector), Retrieval::Hybrid)?;
    }
    let mut with_embedding = Vec::new();
    let mut without_embedding = Vec::new();
    let mut embedding_only = Vec::new();
    let mut lexical_only = Vec::new();
    let mut anonymous = Vec::new();
    let mut with_typo = Vec::new();
    let mut tuned = Vec::new();
    let mut spelling_only = Vec::new();
    let mut typo_spelling_only = Vec::new();
    let typo_queries = with_one_typo(queries);
    for _ in 0..args.rounds.max(1) {
        for (query, vector) in queries.iter().zip(&fixture.query_vectors) {
            let started = Instant::now();
            let (spelling, embedding) = run_embedding(&query.text)?;
            with_embedding.push(started.elapsed().as_secs_f64() * 1e3);
            spelling_only.push(spelling);
            embedding_only.push(embedding);

            let started = Instant::now();
            run_embedding_on(&tuned_engine, &query.text)?;
            tuned.push(started.elapsed().as_secs_f64() * 1e3);

            let started = Instant::now();
            run(&query.text, Some(vector), Retrieval::Hybrid)?;
            without_embedding.push(started.elapsed().as_secs_f64() * 1e3);

            let started = Instant::now();
            run(&query.text, None, Retrieval::LexicalOnly)?;
            lexical_only.push(started.elapsed().as_secs_f64() * 1e3);

            let started = Instant::now();
            run_as(&query.text, Some(vector), Retrieval::Hybrid, false)?;
            anonymous.push(started.elapsed().as_secs_f64() * 1e3);
        }
        for query in &typo_queries {
            let started = Instant::now();
            let (spelling, _) = run_embedding(&query.text)?;
            with_typo.push(started.elapsed().as_secs_f64() * 1e3);
            typo_spelling_only.push(spelling);
        }
    }
    // Semantic retrieval alone: the exact scan against the HNSW graph the engine uses at this size.
    // The graph as it would be built for a catalog above `min_items` (the default keeps 44k items exact).
    let ann = AnnConfig { min_items: 0, ..SearchConfig::default().ann };
    let graph_started = Instant::now();
    let index = VectorIndex::with_ann(&fixture.title_vectors, ann)?;
    let graph_seconds = graph_started.elapsed().as_secs_f64();
    let k = SearchConfig::default().semantic_candidates;
    let (mut scan, mut graph, mut found, mut wanted) = (Vec::new(), Vec::new(), 0usize, 0usize);
    for vector in &fixture.query_vectors {
        let started = Instant::now();
        let exact = std::hint::black_box(index.search_exact(vector, k, None)?);
        scan.push(started.elapsed().as_secs_f64() * 1e3);
        let started = Instant::now();
        let approximate = std::hint::black_box(index.search(vector, k, None)?);
        graph.push(started.elapsed().as_secs_f64() * 1e3);
        let approximate: std::collections::HashSet<usize> = approximate.iter().map(|hit| hit.0).collect();
        wanted += exact.len();
        found += exact.iter().filter(|hit| approximate.contains(&hit.0)).count();
    }

    let mut out = String::new();
    out.push_str(&format!(
        "Search latency: {} products (title + attributes, MiniLM title vectors), {} queries x {} rounds, one thread of requests\n",
        engine.items().len(),
        queries.len(),
        args.rounds.max(1)
    ));
    out.push_str(&format!("  engine build (tantivy index, vectors, vocabulary): {build_seconds:.1} s\n"));
    out.push_str(&format!(
        "  catalog tuning (embedding {descriptions} descriptions, fitting on {} products with {} bag words, applying): {tuning_seconds:.1} s\n",
        tuning.examples(),
        tuning.words()
    ));
    out.push_str(&summary("hybrid, with query embedding (MiniLM)", with_embedding.clone()));
    out.push_str(&summary("hybrid, with query embedding, one typo per query", with_typo.clone()));
    out.push_str(&summary("hybrid, with query embedding, tuned vectors", tuned.clone()));
    out.push_str(&summary("hybrid, query vector given", without_embedding));
    out.push_str(&summary("hybrid, query vector given, anonymous shopper", anonymous));
    out.push_str(&summary("lexical only (no vectors)", lexical_only));
    out.push_str(&summary("query embedding alone", embedding_only));
    out.push_str(&summary("spelling correction alone", spelling_only));
    out.push_str(&summary("spelling correction alone, one typo per query", typo_spelling_only));
    out.push_str(&summary(&format!("exact cosine scan, {} x 384, top {k}", index.len()), scan));
    out.push_str(&summary(&format!("HNSW graph (ef {}), top {k}", ann.ef_search), graph));
    out.push_str(&format!(
        "  HNSW recall@{k} against the exact scan: {:.4}; graph build {graph_seconds:.1} s (M 32, efConstruction {})\n",
        found as f64 / wanted.max(1) as f64,
        ann.ef_construction
    ));
    let mut sorted = with_embedding;
    sorted.extend(with_typo);
    sorted.extend(tuned);
    sorted.sort_by(f64::total_cmp);
    let p99 = percentile(&sorted, 0.99);
    out.push_str(&format!(
        "Goal: p99 < 20 ms with embedding (queries as logged, with one typo, tuned vectors): {} ({p99:.2} ms)\n",
        if p99 < 20.0 { "PASS" } else { "FAIL" }
    ));
    println!("{out}");
    Ok(())
}
