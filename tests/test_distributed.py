"""Training under torchrun on the CPU (gloo): one checkpoint, the same weights as one process on the same
global batch, resume after kill -9; the streaming dataset gives the slices of the in-memory one."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from helpers import make_lgg_patient
from nbutils import methods
from nbutils.cli import main
from nbutils.data.datasets import SliceDataset, square_volume
from nbutils.data.cases import load_cases
from nbutils.data.streaming import cache_slices
from nbutils.train import load_checkpoint

GMM = ["--size", "32", "--batch-size", "4", "--k", "2", "--lr", "1e-2"]
DCN = ["--size", "32", "--batch-size", "4", "--features", "4", "--pretrain-epochs", "1"]


def torchrun(*argv, timeout=240):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "nbutils", *map(str, argv)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def four_slices(tmp_path):
    root = tmp_path / "kaggle_3m"
    make_lgg_patient(root, "TCGA_XX_0001_20000101", slices=(1, 2), seed=0)
    make_lgg_patient(root, "TCGA_XX_0002_20000101", slices=(1, 2), seed=1)
    return root


def test_two_processes_train_the_same_weights_as_one_on_the_same_global_batch(four_slices, tmp_path, capsys):
    one, two = tmp_path / "one.pt", tmp_path / "two.pt"
    assert main(["train", "deepgmm", str(four_slices), str(one), "--epochs", "1", *GMM]) == 0
    result = torchrun("train", "deepgmm", four_slices, two, "--epochs", "1", *GMM)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained on 2 case(s) by 2 processes" in result.stdout and result.stdout.count("trained on") == 1
    a, b = load_checkpoint(one, "deepgmm"), load_checkpoint(two, "deepgmm")
    assert a["world_size"] == 1 and b["world_size"] == 2 and a["fingerprint"] == b["fingerprint"]
    for name, weight in a["model"].items():
        torch.testing.assert_close(b["model"][name], weight, rtol=1e-3, atol=1e-4, msg=name)  # Adam steps of 1e-2
    assert b["history"][0]["nll"] == pytest.approx(a["history"][0]["nll"], rel=1e-4)
    out = tmp_path / "out"
    assert main(["segment", "deepgmm", str(four_slices), str(out), "--checkpoint", str(two)]) == 0
    assert len(list(out.rglob("*_labels.tif"))) == 4


def test_dcn_centres_reduced_over_processes_equal_one_process(four_slices, tmp_path):
    torch.manual_seed(0)
    vols = [c.volume for c in load_cases(four_slices)]
    data = SliceDataset([square_volume(v, 32) for v in vols])
    z = torch.randn(len(data) * 32 * 32, 4)
    centres, counts = torch.randn(3, 4), torch.full((3,), 100)
    from nbutils.methods import dcn

    expected = centres.clone()
    dcn.update_centres(expected, counts.clone(), z)
    script = tmp_path / "shards.py"
    script.write_text(f"""
import torch, torch.distributed as dist
from nbutils.methods import dcn
from nbutils.runtime import all_sum
dist.init_process_group("gloo")
r, n = dist.get_rank(), dist.get_world_size()
torch.manual_seed(0)
torch.randn(0)
z, centres, counts = torch.load({str(tmp_path / 'in.pt')!r})
_, m, s = dcn.assign(centres, z[r::n])
dcn.move_centres(centres, counts, all_sum(m), all_sum(s))
if r == 0:
    torch.save(centres, {str(tmp_path / 'out.pt')!r})
dist.destroy_process_group()
""")
    torch.save((z, centres, counts), tmp_path / "in.pt")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                           str(script)], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    torch.testing.assert_close(torch.load(tmp_path / "out.pt"), expected, rtol=1e-5, atol=1e-5)


def test_a_killed_job_resumes_from_its_checkpoint(four_slices, tmp_path):
    ckpt = tmp_path / "dcn.pt"
    argv = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m",
            "nbutils", "train", "dcn", str(four_slices), str(ckpt), "--epochs", "200", *DCN]
    job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           env=dict(os.environ, OMP_NUM_THREADS="1"))
    deadline = time.time() + 180
    while not ckpt.exists() and time.time() < deadline and job.poll() is None:
        time.sleep(0.2)
    import psutil  # torchrun starts its workers in sessions of their own: kill -9 each of them

    for process in [psutil.Process(job.pid), *psutil.Process(job.pid).children(recursive=True)]:
        process.send_signal(signal.SIGKILL)
    job.wait()
    psutil.wait_procs(psutil.Process().children(recursive=True), timeout=10)
    assert ckpt.exists()
    killed_at = load_checkpoint(ckpt, "dcn")["epoch"]
    assert killed_at < 200
    result = torchrun("train", "dcn", four_slices, ckpt, "--epochs", str(killed_at + 2), *DCN)
    assert result.returncode == 0, result.stderr[-2000:]
    state = load_checkpoint(ckpt, "dcn")
    assert state["epoch"] == killed_at + 2 and state["world_size"] == 2
    assert [h["phase"] for h in state["history"]].count("dcn") == killed_at + 2


def test_streaming_slices_equal_the_in_memory_ones(four_slices, tmp_path):
    vols = [c.volume for c in load_cases(four_slices)]
    stream = cache_slices(iter(vols), tmp_path / "cache", 32)
    memory = SliceDataset([square_volume(v, 32) for v in vols])
    assert len(stream) == len(memory) == 4 and stream.channels == memory.channels and stream.has_target
    for i in range(len(memory)):
        a, b = stream[i], memory[i]
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    from nbutils.methods.base import fingerprint

    assert stream.fingerprint == fingerprint(vols)
    model = methods.get("deepgmm", "ci", mode="trained", size=32, batch_size=4, k=2, epochs=1).fit(stream, progress=False)
    assert np.isfinite(model.history[-1]["nll"])


def test_the_other_ranks_wait_for_the_slice_cache_on_the_disk(four_slices, tmp_path):
    import threading
    import time

    from nbutils.data.streaming import wait_for_cache

    vols = [c.volume for c in load_cases(four_slices)]
    folder = tmp_path / "cache"
    writer = threading.Timer(0.5, lambda: cache_slices(iter(vols), folder, 32))  # rank 0, still building
    start = time.perf_counter()
    writer.start()
    wait_for_cache(folder, poll=0.05)
    assert time.perf_counter() - start >= 0.5 and (folder / "index.json").exists()
    writer.join()
