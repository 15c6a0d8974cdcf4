"""Reading the GPUs a container sees (the real-GPU half of 3.4-gpu)."""

import os
import shutil
import subprocess

import pytest

from fixtures.kube.gpu import LIST_COMMAND, visible_gpus

NVIDIA_SMI = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0b2c6c1e-1111-2222-3333-444455556666)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-7f3d9a2b-1111-2222-3333-444455556666)
"""


def test_nvidia_smi_lines_count_one_gpu_each():
    assert len(visible_gpus(NVIDIA_SMI)) == 2


def test_device_nodes_count_without_control_nodes():
    assert visible_gpus("nvidia0\nnvidia3\n") == ["nvidia0", "nvidia3"]
    assert visible_gpus("nvidiactl\nnvidia-uvm\nnvidia-modeset\n") == []


def test_nothing_visible_is_zero():
    assert visible_gpus("") == []


@pytest.mark.skipif(not shutil.which("nvidia-smi"), reason="no NVIDIA driver on this machine")
def test_on_a_real_gpu_machine_the_command_agrees_with_the_driver():
    """Runs where a GPU exists (the device check): the listing equals the driver's own count."""
    out = subprocess.run(["sh", "-c", LIST_COMMAND], capture_output=True, text=True, timeout=60).stdout
    count = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=60).stdout.split()
    nodes = [n for n in os.listdir("/dev") if n.startswith("nvidia") and n[6:].isdigit()]
    assert len(visible_gpus(out)) == len(count) >= 1
    assert len(visible_gpus("\n".join(nodes))) in (0, len(count))  # device nodes may be hidden in containers
