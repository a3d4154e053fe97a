#!/usr/bin/env python3
"""Token embeddings, as the Python prototype's GGUF guide taught them: look up a token's row
of token_embd.weight and list the tokens whose rows are nearest by cosine similarity.

    PYTHONPATH=build/python python3 examples/embeddings.py MODEL [WORD] [--top N]

MODEL is a GGUF file or a fragment directory. Prints one line per neighbour:
"RANK  ID  SIMILARITY  PIECE".
"""
import argparse
import sys

import numpy as np

import ggswarm


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("word", nargs="?", default="king")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    try:
        model = ggswarm.load_model(args.model)
        # The word's last token (without BOS): " king" is one piece in most vocabularies.
        ids = model.tokenize(args.word, add_special=False)
        if not ids:
            sys.exit(f"embeddings: '{args.word}' has no tokens")
        token = ids[-1]
        emb = model.get_tensor("token_embd.weight")  # (n_vocab, n_embd), float32
    except ggswarm.Error as e:
        sys.exit(f"embeddings: {e}")
    row = emb[token]
    norms = np.linalg.norm(emb, axis=1)
    sim = emb @ row / np.maximum(norms * np.linalg.norm(row), 1e-30)
    order = np.argsort(-sim, kind="stable")[: args.top]
    print(f"token {token} ({model.detokenize([token])!r}) in {emb.shape[0]} tokens of "
          f"{emb.shape[1]} dimensions; nearest by cosine similarity:")
    for rank, i in enumerate(order):
        print(f"{rank:4d} {int(i):6d} {sim[i]:+.4f} {model.detokenize([int(i)])!r}")


if __name__ == "__main__":
    main()
