"""Reading the GPUs a container sees (the real-GPU half of 3.4-gpu): only nvidia-smi exiting 0 counts."""

import shutil
import subprocess

import pytest

from mlops_acceptance.fixtures.kube.gpu import LIST_COMMAND, read_smi, visible_gpus

NVIDIA_SMI = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0b2c6c1e-1111-2222-3333-444455556666)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-7f3d9a2b-1111-2222-3333-444455556666)
nvidia-smi-exit=0 (nvidia-smi)
"""


def test_nvidia_smi_lines_count_one_gpu_each():
    reading = read_smi(NVIDIA_SMI)
    assert reading.ok and reading.problem is None and len(reading.gpus) == 2 and reading.path == "nvidia-smi"


def test_a_failed_nvidia_smi_is_no_gpu_even_with_device_nodes():
    """A driver failure leaves /dev/nvidia0: counting it after nvidia-smi failed would be a false pass."""
    out = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.\nnvidia0\n" \
          "nvidia-smi-exit=9 (/usr/local/nvidia/bin/nvidia-smi)\n"
    reading = read_smi(out)
    assert not reading.ok and reading.gpus == [] and visible_gpus(out) == []
    assert "/usr/local/nvidia/bin/nvidia-smi -L exited 9" in reading.problem


def test_no_nvidia_smi_is_no_gpu():
    reading = read_smi("nvidia0\nnvidia1\nnvidia-smi-exit=absent\n")
    assert reading.exit_code is None and reading.gpus == [] and "no nvidia-smi" in reading.problem
    assert read_smi("").problem  # nothing ran at all


def test_the_command_runs_in_a_shell_without_nvidia_smi():
    """The real command in a real shell where no nvidia-smi exists: it says so, it does not count devices."""
    if shutil.which("nvidia-smi"):
        pytest.skip("this machine has nvidia-smi")
    out = subprocess.run(["sh", "-c", LIST_COMMAND], capture_output=True, text=True, timeout=60,
                         env={"PATH": "/usr/bin:/bin"}).stdout
    assert read_smi(out).exit_code is None, out


@pytest.mark.skipif(not shutil.which("nvidia-smi"), reason="no NVIDIA driver on this machine")
def test_on_a_real_gpu_machine_the_command_agrees_with_the_driver():
    """Runs where a GPU exists (the device check): the listing equals the driver's own count."""
    out = subprocess.run(["sh", "-c", LIST_COMMAND], capture_output=True, text=True, timeout=60).stdout
    count = subprocess.run(["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                           text=True, timeout=60).stdout.split()
    assert read_smi(out).ok and len(visible_gpus(out)) == len(count) >= 1
