"""Device and threading set-up for the TensorFlow encoder (GPU when present, else CPU)."""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

from custom_components.errors import EncoderDeviceError, Errors

logger = logging.getLogger(__name__)

VALID_DEVICES = ("auto", "cpu", "gpu")
_configured = False


def set_offline_env() -> None:
    """Forbids every Hugging Face network access in this process (assets are local only)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def configure_tensorflow() -> None:
    """Turns on GPU memory growth and sizes CPU thread pools, once per process.

    Both only take effect before TensorFlow's runtime starts; if Rasa already started it we keep
    its settings (the `RuntimeError` TensorFlow raises then is expected and ignored).
    """
    global _configured
    if _configured:
        return
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        try:
            # Without growth TF grabs all GPU memory and starves DIET and other processes.
            tf.config.experimental.set_memory_growth(gpu, True)
        except RuntimeError:
            pass
    # Intra-op threads do the matmuls; one inter-op thread avoids oversubscribing small CPUs.
    intra = int(os.environ.get("TF_INTRA_OP_PARALLELISM_THREADS", "0") or 0)
    inter = int(os.environ.get("TF_INTER_OP_PARALLELISM_THREADS", "0") or 0)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(intra or (os.cpu_count() or 1))
        tf.config.threading.set_inter_op_parallelism_threads(inter or 1)
    except RuntimeError:
        logger.debug("TensorFlow already initialised; keeping its thread settings.")
    _configured = True


def resolve_device(device: str) -> str:
    """Maps `auto` / `cpu` / `gpu` to a TensorFlow device name.

    Raises:
        EncoderDeviceError: `gpu` was requested and TensorFlow sees none.
    """
    import tensorflow as tf

    configure_tensorflow()
    has_gpu = bool(tf.config.list_physical_devices("GPU"))
    if device == "gpu" and not has_gpu:
        raise EncoderDeviceError(Errors.E007)
    if device == "cpu" or not has_gpu:
        return "/CPU:0"
    return "/GPU:0"


@functools.lru_cache(maxsize=1)
def cpu_supports_bfloat16() -> bool:
    """True when the CPU has native bfloat16 instructions (AVX512-BF16 or AMX), which oneDNN
    uses for bfloat16 matrix products; without them bfloat16 is emulated and slower."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="ignore")
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def precision_policy(device: str, mixed_precision: bool) -> str:
    """The Keras precision policy for the frozen encoder on `device`.

    float32 unless mixed precision is asked for; then float16 on a GPU, and bfloat16 on a CPU
    with native bfloat16 instructions (float32 on other CPUs, where it would only be slower).
    Outputs are cast back to float32, so the features downstream components see keep their type.
    """
    if not mixed_precision:
        return "float32"
    if device.upper().startswith("/GPU"):
        return "mixed_float16"
    return "mixed_bfloat16" if cpu_supports_bfloat16() else "float32"
