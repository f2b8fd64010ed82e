//! Throughput of [`SentenceEmbedder`] on real product titles, at batch size 1 (one call per title, as at query
//! time) and 64 (catalogue indexing), next to the numpy reference encoder run on the same titles.
//!
//! ```text
//! cargo run --release -p attune-text --example embed_throughput [-- --titles 512 --python PATH | --no-python]
//! ```
//!
//! Titles: the first N product names of `shared/data/catalog/fashion_product_images_styles_names.csv`. Python: the
//! interpreter given by `--python` or `ATTUNE_BENCH_PYTHON`, else `python3`; the script runs itself in
//! `target/bench-venv` and installs numpy, safetensors and tokenizers there on first use.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use attune_text::{SentenceEmbedder, default_model_dir};

const TITLES_FILE: &str = "fashion_product_images_styles_names.csv";
const REPETITIONS: usize = 3;

struct Options {
    title_count: usize,
    python: Option<PathBuf>,
    /// Batch sizes to measure.
    batch_sizes: Vec<usize>,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let options = parse_options()?;
    let model_dir = default_model_dir().ok_or("model not found: set ATTUNE_MODEL_DIR")?;
    let titles = read_titles(&model_dir, options.title_count)?;
    let texts: Vec<&str> = titles.iter().map(String::as_str).collect();

    let started = Instant::now();
    let mut embedder = SentenceEmbedder::load(&model_dir)?;
    println!("loaded {} in {:.2}s", model_dir.display(), started.elapsed().as_secs_f64());
    let tokens: usize = texts.iter().map(|t| embedder.token_count(t)).sum::<Result<_, _>>()?;
    println!(
        "{} product titles, {:.1} wordpieces each on average; {} threads",
        texts.len(),
        tokens as f64 / texts.len() as f64,
        rayon::current_num_threads()
    );
    embedder.embed(&texts[..texts.len().min(64)])?; // warm-up: page in weights, start the thread pool

    let mut rust_rates = Vec::new();
    for &batch_size in &options.batch_sizes {
        let rate = if batch_size == 1 {
            // One call per title, as when embedding a search query.
            best_rate(texts.len(), || texts.iter().try_for_each(|t| embedder.embed_one(t).map(drop)))?
        } else {
            embedder.set_batch_size(batch_size);
            best_rate(texts.len(), || embedder.embed(&texts).map(drop))?
        };
        println!("rust  batch {batch_size:2}: {rate:8.1} sentences/s");
        rust_rates.push((batch_size, rate));
    }

    let Some(python) = options.python else { return Ok(()) };
    let titles_path = std::env::temp_dir().join(format!("attune-text-titles-{}.txt", std::process::id()));
    std::fs::write(&titles_path, titles.join("\n"))?;
    for (batch, rust_rate) in rust_rates {
        match numpy_rate(&python, &model_dir, &titles_path, batch) {
            Ok(numpy) => {
                println!("numpy batch {batch:2}: {numpy:8.1} sentences/s   rust/numpy = {:.1}x", rust_rate / numpy)
            }
            Err(error) => println!("numpy batch {batch:2}: not run ({error})"),
        }
    }
    std::fs::remove_file(&titles_path)?;
    Ok(())
}

/// Sentences per second of the fastest of a few runs of `run` over `count` sentences.
fn best_rate<E>(count: usize, mut run: impl FnMut() -> Result<(), E>) -> Result<f64, E> {
    let mut best = f64::INFINITY;
    for _ in 0..REPETITIONS {
        let started = Instant::now();
        run()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(count as f64 / best)
}

fn parse_options() -> Result<Options, String> {
    let mut options = Options {
        title_count: 512,
        python: Some(std::env::var_os("ATTUNE_BENCH_PYTHON").map_or_else(default_python, PathBuf::from)),
        batch_sizes: vec![1, 64],
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--titles" => {
                let value = args.next().ok_or("--titles needs a number")?;
                options.title_count = value.parse().map_err(|_| format!("--titles {value}: not a number"))?;
            }
            "--python" => options.python = Some(args.next().ok_or("--python needs a path")?.into()),
            "--no-python" => options.python = None,
            "--batch" => {
                let value = args.next().ok_or("--batch needs a number")?;
                options.batch_sizes = vec![value.parse().map_err(|_| format!("--batch {value}: not a number"))?];
            }
            other => {
                return Err(format!(
                    "unknown argument {other} (use --titles N, --batch N, --python PATH, --no-python)"
                ));
            }
        }
    }
    Ok(options)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn default_python() -> PathBuf {
    PathBuf::from("python3")
}

/// The first `count` product names of the catalogue in `shared/data`, found beside `shared/models`.
fn read_titles(model_dir: &Path, count: usize) -> Result<Vec<String>, String> {
    let shared = model_dir.ancestors().nth(2).ok_or("model dir has no shared/ ancestor")?;
    let path = shared.join("data").join("catalog").join(TITLES_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let titles: Vec<String> = text
        .lines()
        .skip(1)
        .map(|line| line.trim().trim_matches('"').to_owned())
        .filter(|line| !line.is_empty())
        .take(count)
        .collect();
    if titles.is_empty() {
        return Err(format!("no titles in {}", path.display()));
    }
    Ok(titles)
}

/// Runs `bench/python/minilm_reference.py bench` and reads its sentences per second.
fn numpy_rate(python: &Path, model_dir: &Path, titles: &Path, batch: usize) -> Result<f64, String> {
    let script = workspace_root().join("bench/python/minilm_reference.py");
    let output = Command::new(python)
        .arg(&script)
        .arg("--model-dir")
        .arg(model_dir)
        .args(["bench", "--batch", &batch.to_string(), "--titles"])
        .arg(titles)
        .output()
        .map_err(|e| format!("starting {}: {e}", python.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!("{} exited with {}: {}", python.display(), output.status, stderr.trim()));
    }
    stdout
        .split_whitespace()
        .find_map(|field| field.strip_prefix("sentences_per_sec="))
        .and_then(|rate| rate.parse().ok())
        .ok_or_else(|| format!("no sentences_per_sec in python output: {stdout}"))
}
