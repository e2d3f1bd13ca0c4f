# SPDX-License-Identifier: Apache-2.0
"""What the end-to-end tests share: running a command, the relative error they compare
logits with, and the skip rules of docs/testing.md (a test whose reference package, data
file or model is absent prints one `SKIP: ...` line saying how to install it and exits 0)."""
import importlib
import os
import subprocess

import numpy as np

FAQ = "/usr/share/doc/debian/FAQ/debian-faq.en.txt.gz"  # Debian package debian-faq
KJV = "/usr/share/bibledit/sources/kjv.xml"              # Debian package bibledit-data


def run(cmd, cwd=None, stderr=False, env=None):
    """Runs `cmd` (a list), with the variables of `env` added to this process's environment;
    its stdout (with `stderr`, stdout then stderr), or an AssertionError with both streams
    if it fails."""
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=cwd,
                       env=dict(os.environ, **env) if env else None)
    assert p.returncode == 0, f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return p.stdout + p.stderr if stderr else p.stdout


def rel_err(ours, ref):
    """max |ours - ref| / max |ref| over all elements (ref not all zero)."""
    return float(np.abs(ours - ref).max() / np.abs(ref).max())


def import_or_skip(*names):
    """The modules `names` (dotted names allowed) in order, or None after printing a SKIP
    line naming the first one missing (scripts/setup.sh --tests installs them all)."""
    modules = []
    for name in names:
        try:
            modules.append(importlib.import_module(name))
        except ImportError as e:
            print(f"SKIP: {e.name or name} is not installed "
                  "(scripts/setup.sh --tests installs it)")
            return None
    return modules


def file_or_skip(path, how):
    """True when `path` exists; else prints `SKIP: PATH not found (HOW)` and returns False."""
    if os.path.exists(path):
        return True
    print(f"SKIP: {path} not found ({how})")
    return False
