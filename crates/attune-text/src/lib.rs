//! Sentence embeddings for Attune: all-MiniLM-L6-v2 run in pure Rust on the CPU.
//!
//! The 6-layer BERT encoder is written out on `candle-core` tensors: f32 matmuls on candle's multi-threaded gemm
//! (with its AVX-512 kernels where the CPU has them) — or, for an input of a few dozen tokens such as a search
//! query, a kernel that streams half-precision copies of the weights once — and the steps between matmuls as fused
//! custom ops spread over all cores with rayon. Text is split by the model's own `tokenizer.json` (WordPiece, via `tokenizers` without
//! network features) and truncated at 256 wordpieces. A sentence vector is the L2-normalised mean of its token
//! vectors, as in sentence-transformers; batches are padded to their own longest text and the padding is masked
//! out. Nothing is downloaded: the model directory must already be on disk (see [`default_model_dir`]). No I/O
//! happens after [`SentenceEmbedder::load`].
//!
//! ```no_run
//! use attune_text::{SentenceEmbedder, cosine, default_model_dir};
//!
//! let dir = default_model_dir().expect("set ATTUNE_MODEL_DIR");
//! let embedder = SentenceEmbedder::load(&dir)?;
//! let vectors = embedder.embed(&["Warm wool jumper", "Knitted winter sweater"])?;
//! assert_eq!(vectors[0].len(), embedder.dimension());
//! println!("similarity {:.3}", cosine(&vectors[0], &vectors[1]));
//! # Ok::<(), attune_text::EmbedError>(())
//! ```

mod batch;
mod config;
mod embedder;
mod encoder;
mod error;
mod fast_math;
mod fused_ops;
mod model_dir;
mod panel_matmul;
mod tokenize;
mod vector;
mod weights;

pub use embedder::{DEFAULT_BATCH_SIZE, SentenceEmbedder};
pub use error::EmbedError;
pub use model_dir::{MODEL_DIR_ENV, default_model_dir};
pub use vector::cosine;
