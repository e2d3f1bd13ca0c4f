#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Extracts the worked examples of a Markdown section into files, with FileCheck files.

  extract-examples.py DOC.md "SECTION TITLE" OUTDIR

In the `## SECTION TITLE` section, a fenced block whose first line is `// file: NAME`
becomes OUTDIR/NAME (without that line, so line numbers match what the reader sees). The
next fenced block, if it is not itself a file, is what `llmpc check NAME` prints: it
becomes OUTDIR/NAME.check with one `CHECK:` line per non-blank line (a `$ command` line
is skipped). Prints the names of the files it wrote.
"""
import os
import re
import sys


def main():
    doc, title, outdir = sys.argv[1:4]
    with open(doc) as f:
        text = f.read()
    m = re.search(r"^## " + re.escape(title) + r"\n(.*?)(?=^## |\Z)", text, re.S | re.M)
    if not m:
        sys.exit(f"extract-examples: no section '## {title}' in {doc}")
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", m.group(1), re.S | re.M)
    os.makedirs(outdir, exist_ok=True)
    current = None
    for block in blocks:
        lines = block.splitlines()
        first = re.match(r"// file: (\S+)$", lines[0]) if lines else None
        if first:
            current = first.group(1)
            with open(os.path.join(outdir, current), "w") as f:
                f.write("\n".join(lines[1:]) + "\n")
            print(current)
        elif current:
            with open(os.path.join(outdir, current + ".check"), "w") as f:
                for line in lines:
                    if line.strip() and not line.startswith("$ "):
                        f.write("CHECK: " + line + "\n")
            print(current + ".check")
            current = None
    return 0


if __name__ == "__main__":
    sys.exit(main())
