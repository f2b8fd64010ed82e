#!/usr/bin/env python3
"""Reference all-MiniLM-L6-v2 sentence embeddings in plain numpy, for the Rust port in crates/attune-text.

Same forward pass as shared/models/minilm_numpy_check.py (BERT encoder, mean pooling, L2 normalisation), with the
tokenizer set up the way sentence-transformers runs this model: no padding and truncation at max_seq_length (256
wordpieces, from sentence_bert_config.json) instead of the 128 baked into tokenizer.json.

Runs itself inside target/bench-venv (see _bench_env.py), installing numpy, safetensors and tokenizers there if
missing.

    python bench/python/minilm_reference.py vectors [--out crates/attune-text/tests/data/reference_vectors.json]
        Encodes the fixed test sentences one at a time in float64 with the exact erf and writes them with their
        384 floats rounded to 6 decimals; prints the similarity matrix of the three documented sentences.

    python bench/python/minilm_reference.py bench --titles FILE [--batch 64]
        Encodes the titles (one per line) in float32, vectorised over batches padded to their longest sentence,
        and prints one line: "numpy sentences_per_sec=<float> batch=<n> sentences=<n> seconds=<float>".
"""

import argparse
import json
import math
import os
import sys
import time

from _bench_env import ensure_venv

ensure_venv(["numpy", "safetensors==0.8.0", "tokenizers==0.23.3"], ["numpy", "safetensors", "tokenizers"])

import numpy as np  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DEFAULT_MODEL_DIR = os.path.join(os.path.dirname(ROOT), "shared", "models", "all-MiniLM-L6-v2")
DEFAULT_OUT = os.path.join(ROOT, "crates", "attune-text", "tests", "data", "reference_vectors.json")

LONG_DESCRIPTION = (
    "This lightweight waterproof hiking jacket is made from recycled ripstop nylon with a breathable membrane, "
    "taped seams and a two-way adjustable hood that fits over a helmet. Two zipped hand pockets, a chest pocket "
    "for your phone and pit zips keep you cool on steep climbs, while the drop-tail hem and elasticated cuffs "
    "keep out wind and rain. It packs into its own pocket, weighs only 310 grams and comes in sizes XS to XXL. "
    "Machine wash cold, do not tumble dry, and re-proof the durable water repellent finish once or twice a season "
    "to keep it beading. Free returns within thirty days; see our sizing guide for chest and sleeve measurements."
)

# The fixed test set: the three documented sentences first (their similarity matrix is published with the model).
SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
    "Warm wool jumper for winter, navy, size M",
    "a",
    "Peter England Men Party Blue Jeans",
    "mens running shoes size 10",
    "Café crème brûlée, naïve façade — São Paulo & Zürich!",
    "Günstige Damenschuhe in Größe 38, schwarz",
    "東京の夏はとても暑い 🌞 cheap sunglasses UV400",
    "Wait... what?!? (50% off) -- only $19.99 #deal @store [limited]",
    "  IPHONE 15 PRO MAX CASE\twith\tMagSafe  \n",
    LONG_DESCRIPTION,  # more than 128 wordpieces, fewer than 256
    LONG_DESCRIPTION + " " + LONG_DESCRIPTION,  # more than 256 wordpieces: truncated
]


def load_model(model_dir, dtype):
    weights = {k: v.astype(dtype) for k, v in load_file(os.path.join(model_dir, "model.safetensors")).items()}
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    with open(os.path.join(model_dir, "sentence_bert_config.json")) as f:
        max_seq_length = json.load(f)["max_seq_length"]
    tokenizer = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_length=max_seq_length)
    return weights, config, tokenizer


def transpose_dense_weights(weights):
    """W.T of every 2-D encoder weight, contiguous: numpy's matmul only reaches BLAS with contiguous operands."""
    return {k: np.ascontiguousarray(v.T) for k, v in weights.items() if k.startswith("encoder.") and v.ndim == 2}


def layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def erf_exact(x):
    return np.vectorize(math.erf, otypes=[x.dtype])(x)


def erf_fast(x):
    # Abramowitz & Stegun 7.1.26, absolute error below 1.5e-7: vectorised, for the throughput benchmark only.
    sign = np.sign(x)
    a = np.abs(x)
    t = 1.0 / (1.0 + 0.3275911 * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return sign * (1.0 - poly * np.exp(-a * a))


def encode_batch(weights, transposed, config, ids_list, erf):
    """Embeds a batch of token id lists: pads to the longest, masks the padding in attention and in pooling.

    `transposed` holds the dense weights transposed and contiguous (see `transpose_dense_weights`)."""
    w = weights
    batch, longest = len(ids_list), max(len(ids) for ids in ids_list)
    dtype = w["embeddings.word_embeddings.weight"].dtype
    ids = np.zeros((batch, longest), dtype=np.int64)
    mask = np.zeros((batch, longest), dtype=dtype)
    for row, seq in enumerate(ids_list):
        ids[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    eps = config["layer_norm_eps"]
    heads = config["num_attention_heads"]
    head_dim = config["hidden_size"] // heads
    x = (
        w["embeddings.word_embeddings.weight"][ids]
        + w["embeddings.position_embeddings.weight"][:longest]
        + w["embeddings.token_type_embeddings.weight"][0]
    )
    # Token vectors as one [batch * longest, hidden] matrix, so that every dense layer is a single BLAS matmul.
    x = layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps).reshape(batch * longest, -1)
    key_bias = np.where(mask > 0, 0.0, -np.inf).astype(dtype)[:, None, None, :]
    for layer in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{layer}."

        def dense(inp, name):
            return inp @ transposed[p + name + ".weight"] + w[p + name + ".bias"]

        def split_heads(t):
            return t.reshape(batch, longest, heads, head_dim).transpose(0, 2, 1, 3)

        q = split_heads(dense(x, "attention.self.query"))
        k = split_heads(dense(x, "attention.self.key"))
        v = split_heads(dense(x, "attention.self.value"))
        scores = q @ k.transpose(0, 1, 3, 2) / np.sqrt(head_dim) + key_bias
        scores = np.exp(scores - scores.max(-1, keepdims=True))
        scores /= scores.sum(-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch * longest, heads * head_dim)
        x = layer_norm(
            dense(context, "attention.output.dense") + x,
            w[p + "attention.output.LayerNorm.weight"],
            w[p + "attention.output.LayerNorm.bias"],
            eps,
        )
        hidden = dense(x, "intermediate.dense")
        hidden = 0.5 * hidden * (1.0 + erf(hidden / np.sqrt(2.0)))
        x = layer_norm(
            dense(hidden, "output.dense") + x, w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps
        )
    pooled = (x.reshape(batch, longest, -1) * mask[:, :, None]).sum(1) / mask.sum(1, keepdims=True)
    return pooled / np.linalg.norm(pooled, axis=1, keepdims=True)


def json_one_record_per_line(document):
    """Pretty enough to diff: the header fields, then each sentence record on a line of its own."""
    header = {k: v for k, v in document.items() if k != "sentences"}
    lines = [json.dumps(header, ensure_ascii=False)[:-1] + ', "sentences": [']
    records = [json.dumps(r, ensure_ascii=False) for r in document["sentences"]]
    lines.append(",\n".join(records))
    lines.append("]}")
    return "\n".join(lines) + "\n"


def write_vectors(args):
    weights, config, tokenizer = load_model(args.model_dir, np.float64)
    transposed = transpose_dense_weights(weights)
    records = []
    for sentence in SENTENCES:
        ids = tokenizer.encode(sentence).ids
        vector = encode_batch(weights, transposed, config, [ids], erf_exact)[0]
        records.append({"sentence": sentence, "tokens": len(ids), "vector": [round(float(v), 6) for v in vector]})
    document = {
        "model": "all-MiniLM-L6-v2",
        "produced_by": "bench/python/minilm_reference.py vectors (numpy float64, exact erf, truncation 256)",
        "sentences": records,
    }
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(json_one_record_per_line(document))
    documented = np.array([r["vector"] for r in records[:3]])
    print("similarity of the documented sentences:")
    print(np.round(documented @ documented.T, 4))
    print("token counts:", [r["tokens"] for r in records])
    print(f"wrote {len(records)} vectors to {args.out}")


def bench(args):
    weights, config, tokenizer = load_model(args.model_dir, np.float32)
    transposed = transpose_dense_weights(weights)
    with open(args.titles, encoding="utf-8") as f:
        titles = [line.rstrip("\n") for line in f if line.strip()]
    start = time.perf_counter()
    encodings = tokenizer.encode_batch(titles)
    order = sorted(range(len(titles)), key=lambda i: len(encodings[i].ids))
    for first in range(0, len(order), args.batch):
        chunk = order[first : first + args.batch]
        encode_batch(weights, transposed, config, [encodings[i].ids for i in chunk], erf_fast)
    seconds = time.perf_counter() - start
    print(
        f"numpy sentences_per_sec={len(titles) / seconds:.1f} batch={args.batch} "
        f"sentences={len(titles)} seconds={seconds:.3f}"
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model-dir", default=os.environ.get("ATTUNE_MODEL_DIR", DEFAULT_MODEL_DIR))
    commands = parser.add_subparsers(dest="command", required=True)
    vectors = commands.add_parser("vectors", help="write the reference vectors for the Rust tests")
    vectors.add_argument("--out", default=DEFAULT_OUT)
    throughput = commands.add_parser("bench", help="measure numpy sentences per second")
    throughput.add_argument("--titles", required=True, help="text file, one sentence per line")
    throughput.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    if not os.path.isdir(args.model_dir):
        sys.exit(f"model directory not found: {args.model_dir}")
    if args.command == "vectors":
        write_vectors(args)
    else:
        bench(args)


if __name__ == "__main__":
    main()
