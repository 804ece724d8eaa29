"""The installed environment matches what rt2 needs (guards, not features)."""

import importlib.util


def test_no_vision_companion_wheel_of_torch():
    # The torchvision wheel on these machines is a CUDA build that breaks `import transformers`;
    # transformers' image processors here use the *ImageProcessorPil classes instead.
    name = "torch" + "vision"
    assert importlib.util.find_spec(name) is None, f"{name} is installed: remove it from the venv"
