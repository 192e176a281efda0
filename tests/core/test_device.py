import pytest

from berg_core import InvalidParameterError
from berg_core.device import default_dtype, resolve_device


def test_cpu_and_auto():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("CPU") == "cpu"
    assert resolve_device("auto") in {"cpu", "cuda:0", "mps"}
    assert resolve_device(None) == resolve_device("auto")


def test_unknown_device():
    with pytest.raises(InvalidParameterError, match="unknown device 'tpu'"):
        resolve_device("tpu")


def test_cuda_missing_is_error_not_fallback():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        assert resolve_device("cuda") == "cuda:0"
        with pytest.raises(InvalidParameterError, match="only"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(InvalidParameterError, match="CUDA is not available"):
            resolve_device("cuda:1")


def test_default_dtypes():
    assert default_dtype("cpu") == "float32" and default_dtype("cuda:0") == "float16"
