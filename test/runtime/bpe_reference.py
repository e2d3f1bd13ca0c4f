#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Reference token ids for BpeTokenizerTest: encodes each text of a JSON-lines file
({"text": ...} per line) with the Hugging Face `tokenizers` package (add_special_tokens
off, so only what the text holds) and writes {"ids": [...]} per line.

    scripts/python.sh test/runtime/bpe_reference.py TOKENIZER_JSON IN.jsonl OUT.jsonl

Exit status 3 when the `tokenizers` package is missing (the test then skips)."""
import json
import sys


def main():
    try:
        from tokenizers import Tokenizer
    except ImportError:
        print("bpe_reference.py: the 'tokenizers' pip package is not installed", file=sys.stderr)
        return 3
    tok_path, in_path, out_path = sys.argv[1:4]
    tok = Tokenizer.from_file(tok_path)
    with open(in_path, encoding="utf-8") as f:
        texts = [json.loads(line)["text"] for line in f if line.strip()]
    encs = tok.encode_batch(texts, add_special_tokens=False)
    with open(out_path, "w", encoding="utf-8") as f:
        for e in encs:
            f.write(json.dumps({"ids": e.ids}) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
