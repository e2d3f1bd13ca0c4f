#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Checks editors/llmp.tmLanguage.json against the language that lang/ implements.

  check-grammar.py GRAMMAR.json LANG_DIR

Fails (exit 1, one line per problem) when the grammar is not valid JSON, an `include`
names no repository entry, a regex does not compile, or a keyword, stage kind or stage
field of lang/ is missing from the grammar. Keywords are the spellings the parser compares
identifiers with (`isIdent("...")` in Parser.cpp: the lexer has no keyword table, keywords
being contextual); stage kinds and fields are the lists of `stageKinds()` and
`stageFieldNames()` in Sema.cpp. Python's `re` stands in for Oniguruma: the grammar keeps
to the syntax the two share.
"""
import json
import os
import re
import sys


def alternation(regex):
    """The words of the first `(?:a|b|c)` group of a regex."""
    m = re.search(r"\(\?:([A-Za-z0-9_|]+)\)", regex)
    return set(m.group(1).split("|")) if m else set()


def cpp_string_list(source, function):
    """The string literals of the vector that `function()` returns in a .cpp file."""
    m = re.search(function + r"\(\)\s*\{(.*?)\n\}", source, re.S)
    if not m:
        sys.exit(f"check-grammar: cannot find {function}() in lang/")
    return re.findall(r'"(\w+)"', m.group(1))


def main():
    grammar_path, lang_dir = sys.argv[1], sys.argv[2]
    problems = []
    try:
        with open(grammar_path) as f:
            grammar = json.load(f)
    except json.JSONDecodeError as e:
        print(f"{grammar_path}: not valid JSON: {e}")
        return 1
    for key in ("scopeName", "patterns", "repository"):
        if key not in grammar:
            problems.append(f"missing top-level key '{key}'")
    repo = grammar.get("repository", {})

    def walk(node, where):
        if isinstance(node, dict):
            for key in ("match", "begin", "end"):
                if key in node:
                    try:
                        re.compile(node[key])
                    except re.error as e:
                        problems.append(f"{where}.{key}: regex does not compile: {e}")
            inc = node.get("include")
            if inc and inc.startswith("#") and inc[1:] not in repo:
                problems.append(f"{where}: include '{inc}' names no repository entry")
            for k, v in node.items():
                walk(v, f"{where}.{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, f"{where}[{i}]")

    walk(grammar, "grammar")

    with open(os.path.join(lang_dir, "Parser.cpp")) as f:
        keywords = set(re.findall(r'isIdent\("(\w+)"\)', f.read()))
    with open(os.path.join(lang_dir, "Sema.cpp")) as f:
        sema = f.read()
    kinds = cpp_string_list(sema, "stageKinds")
    fields = cpp_string_list(sema, "stageFieldNames")

    def entry(name):
        return repo.get(name, {}).get("match", "")

    # `x` (as in `16 x 128`) has its own rule; every other keyword is in `keywords`.
    batch = entry("batch")
    if "x" in keywords:
        keywords.discard("x")
        m = re.search(batch, "batch: 16 x 128") if batch else None
        if not m or m.group(1) != "x":
            problems.append("the 'batch' rule does not match the 'x' of '16 x 128'")
    for kw in sorted(keywords - alternation(entry("keywords"))):
        problems.append(f"keyword '{kw}' (lang/Parser.cpp) is missing from 'keywords'")
    for kind in kinds:
        if kind not in alternation(entry("stage-kinds")):
            problems.append(f"stage kind '{kind}' (lang/Sema.cpp) is missing from 'stage-kinds'")
        m = re.search(entry("stage-declaration"), f"stage s : {kind} {{")
        if not m or m.group(4) != kind:
            problems.append(f"'stage-declaration' does not colour stage kind '{kind}'")
    for field in fields:
        if field not in alternation(entry("stage-fields")):
            problems.append(f"stage field '{field}' (lang/Sema.cpp) is missing from 'stage-fields'")
        m = re.search(entry("stage-field"), f"  {field}: 1")
        if not m or m.group(1) != field:
            problems.append(f"'stage-field' does not match stage field '{field}'")

    # The lexer's numbers (docs/language.md) are numbers; `16x128` is its error.
    number_rules = repo.get("number", {}).get("patterns", [])
    invalid = [r["match"] for r in number_rules if "invalid" in r.get("name", "")]
    for text in ("128", "0.02", "3e-3", "1e-8", ".5", "1E+4"):
        if any(re.search(r, text) for r in invalid):
            problems.append(f"the number '{text}' is coloured as invalid")
    if not any(re.search(r, "16x128") for r in invalid):
        problems.append("'16x128' is not coloured as invalid")

    for p in problems:
        print(f"{grammar_path}: {p}")
    if problems:
        return 1
    print(f"grammar ok: {len(keywords) + 1} keywords, {len(kinds)} stage kinds, "
          f"{len(fields)} stage fields")
    return 0


if __name__ == "__main__":
    sys.exit(main())
