"""The precision policy: networks may run under autocast, statistics never do.

CPU autocast in bfloat16 uses the same operator lists as CUDA autocast (matmul, einsum and convolutions in
bfloat16), so every statistic a loss computes is checked here against float32, on the CPU, in CI. A new
statistic that forgets :func:`nbutils.precision.float32` fails :func:`test_every_training_loss_is_the_same_under_autocast`.
"""

import numpy as np
import pytest
import torch

from helpers import run
from nbutils import precision
from nbutils.methods import acwe, condensation, cuts, dcn, deepgmm, torch_kmeans

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def under_autocast(fn, *args, **kwargs):
    with torch.autocast(**BF16):
        return fn(*args, **kwargs)


def test_policy_uses_bf16_only_where_native_and_fp16_with_a_scaler_elsewhere(monkeypatch):
    assert precision.policy("auto", "cpu").dtype is None and precision.policy("off", "cpu").name == "off"
    with pytest.raises(ValueError, match="^--amp bf16 needs a CUDA GPU; on the cpu choose --amp off"):
        precision.policy("bf16", "cpu")
    with pytest.raises(ValueError, match="amp must be one of auto, bf16, fp16, off"):
        precision.policy("fp8", "cpu")
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Tesla T4")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (7, 5))  # Turing: emulated bf16
    t4 = precision.policy("auto", "cuda")
    assert t4.dtype == torch.float16 and t4.name == "fp16" and t4.scales_loss
    with pytest.raises(ValueError, match="^--amp bf16: Tesla T4 \\(compute capability 7.5\\) has no native bfloat16"):
        precision.policy("bf16", "cuda")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))  # Hopper
    h100 = precision.policy("auto", "cuda")
    assert h100.dtype == torch.bfloat16 and not h100.scales_loss  # bfloat16 has float32's range
    assert precision.policy("fp16", "cuda").dtype == torch.float16 and precision.policy("off", "cuda").dtype is None


def test_float32_runs_outside_autocast_and_keeps_float64():
    @precision.float32
    def product(a, b):
        return a @ b

    a = torch.randn(4, 4)
    assert under_autocast(product, a, a).dtype == torch.float32
    assert under_autocast(lambda: a @ a).dtype == torch.bfloat16  # what it protects against
    assert product(a.double(), a.double()).dtype == torch.float64
    assert product(a.bfloat16(), a.bfloat16()).dtype == torch.float32  # half inputs come back to float32


def small_variance_mixture(seed=0):
    """Two classes on [0, 1] intensities, one with variance 4e-4 (sd 0.02), p a soft assignment."""
    rng = np.random.default_rng(seed)
    cls = rng.random((2, 32, 32)) < 0.5
    x = np.where(cls, rng.normal(0.7, 0.02, cls.shape), rng.normal(0.3, 0.1, cls.shape))
    p = np.stack([cls, ~cls], 1).astype(np.float64) * 0.9 + 0.05
    return torch.tensor(p, dtype=torch.float32), torch.tensor(x[:, None], dtype=torch.float32)


def test_deep_gmm_mixture_parameters_and_nll_are_float32_under_autocast():
    p, x = small_variance_mixture()
    pi, mu, var = deepgmm.m_step(p, x)
    raw = under_autocast(deepgmm.m_step.__wrapped__, p, x)[2].float()  # without the policy
    assert (raw - var).abs().max() / var.min() > 0.1  # bfloat16 loses the small variance
    for got, want in zip(under_autocast(deepgmm.m_step, p, x), (pi, mu, var)):
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, want, rtol=1e-5, atol=0)
    log_p = torch.log(p)
    torch.testing.assert_close(under_autocast(deepgmm.nll, log_p, x)[0], deepgmm.nll(log_p, x)[0], rtol=1e-6, atol=0)


def close_centres(seed=0, n=4000, d=16):
    """Features whose two centres are close: bfloat16 distances flip nearest-centre choices."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(2, d, generator=g) * 0.01 + 3.0
    z = centres[torch.randint(2, (n,), generator=g)] + torch.randn(n, d, generator=g) * 0.01
    return centres, z


def test_dcn_assignments_and_k_means_distances_do_not_flip_under_autocast():
    centres, z = close_centres()
    labels = dcn.assign(centres, z)[0]
    raw = under_autocast(lambda: torch_kmeans.squared_distances.__wrapped__(z, centres).argmin(1))
    assert (raw != labels).float().mean() > 0.05  # bfloat16 distances flip them
    assert torch.equal(under_autocast(dcn.assign, centres, z)[0], labels)
    counts = torch.full((2,), 100)
    expected = centres.clone()
    dcn.update_centres(expected, counts.clone(), z)
    got = centres.clone()
    under_autocast(dcn.update_centres, got, counts.clone(), z)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)
    fitted = torch_kmeans.kmeans(z, 2, seed=0)[0]
    torch.testing.assert_close(under_autocast(torch_kmeans.kmeans, z, 2, seed=0)[0], fitted, rtol=1e-6, atol=1e-6)


def test_acwe_rfcm_dice_contrastive_and_condensation_statistics_are_float32_under_autocast():
    g = torch.Generator().manual_seed(0)
    y, x = torch.rand(2, 1, 16, 16, generator=g), torch.rand(2, 1, 16, 16, generator=g) * 0.01 + 0.5
    mask = torch.rand(2, 16, 16, generator=g) > 0.2
    u = torch.softmax(torch.randn(2, 3, 16, 16, generator=g), 1)
    a, b = torch.randn(2, 64, 8, generator=g), torch.randn(2, 64, 8, generator=g)
    points, weights = torch.randn(300, 5, generator=g), torch.rand(300, generator=g) + 0.5
    cases = [
        (acwe.region_means, (y, x, mask)),
        (lambda y, x, m: acwe.acwe_loss(y, x, mu=0.1, nu=0.5, mask=m)["loss"], (y, x, mask)),
        (lambda u, x, m: acwe.rfcm_loss(u, x, beta=0.01, mask=m)["loss"], (u, x, mask)),
        (acwe.dice_loss, (y, mask)),
        (acwe.bce_loss, (torch.logit(y), mask)),
        (cuts.nt_xent, (a, b)),
        (cuts.ssim, (x.reshape(8, 1, 8, 8), y.reshape(8, 1, 8, 8))),
        (lambda *t: condensation.diffusion_step(*t, eps=1.0), (points, weights)),
    ]
    for fn, args in cases:
        torch.testing.assert_close(under_autocast(fn, *args), fn(*args), rtol=1e-5, atol=1e-7)


class Fixed(torch.nn.Module):
    """A 'network' that returns fixed float32 outputs: only the loss's own arithmetic meets autocast."""

    def __init__(self, out, reconstruction=None):
        super().__init__()
        self.out, self.reconstruction = torch.nn.Parameter(out), reconstruction
        self.config = dict(patch=5)

    def forward(self, x):
        return self.out if self.reconstruction is None else (self.out, self.reconstruction)

    def reconstruct(self, z):
        return z[..., :1].expand(*z.shape[:-1], 25)


def test_every_training_loss_is_the_same_under_autocast():
    g = torch.Generator().manual_seed(1)
    image = torch.rand(2, 1, 16, 16, generator=g) * 0.02 + 0.5
    brain = torch.ones(2, 16, 16, dtype=torch.bool)
    target = torch.rand(2, 16, 16, generator=g) > 0.7
    batch = dict(image=image, brain=brain, target=target, labelled=torch.tensor([True, False]))
    centres, _ = close_centres(d=4)
    losses = {
        "dcn": (Fixed(torch.randn(2, 4, 16, 16, generator=g) * 0.01 + 3.0, image), lambda m, b: dcn.dcn_loss(
            m, b, centres, 1.0)["loss"]),
        "deepgmm": (Fixed(torch.randn(2, 3, 16, 16, generator=g)), lambda m, b: deepgmm.loss(m, b)["loss"]),
        "acwe joint": (Fixed(torch.randn(2, 1, 16, 16, generator=g)), lambda m, b: acwe.joint_loss(
            m(b["image"]), b["image"], b["target"], b["labelled"], nu=0.5, label_loss="bce")["loss"]),
        "rfcm": (Fixed(torch.randn(2, 3, 16, 16, generator=g)), lambda m, b: acwe.rfcm_loss(
            torch.softmax(m(b["image"]), 1), b["image"], 0.01, mask=b["brain"])["loss"]),
        "cuts": (Fixed(torch.randn(2, 8, 16, 16, generator=g)), lambda m, b: cuts.cuts_loss(m, b, n_anchors=16)["loss"]),
    }
    for name, (model, loss) in losses.items():
        torch.manual_seed(0)
        want = loss(model, batch)
        torch.manual_seed(0)
        got = under_autocast(loss, model, batch)
        assert got.dtype == torch.float32, name
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-7, msg=name)


def test_amp_and_out_of_memory_are_one_line_on_the_command_line(lgg_folder, tmp_path, capsys, monkeypatch):
    code, _, err = run(capsys, "segment", "dcn", lgg_folder, tmp_path / "o", "--amp", "bf16", "--device", "cpu")
    assert code == 2 and err == "error: --amp bf16 needs a CUDA GPU; on the cpu choose --amp off (or auto)\n"
    assert not (tmp_path / "o").exists()
    code, _, err = run(capsys, "compare", "phantom", "--amp", "fp16", "--methods", "kmeans,dcn")
    assert code == 2 and err.startswith("error: --amp fp16 needs a CUDA GPU")
    from nbutils import methods

    def out_of_memory(self, volumes, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(methods.DCN, "fit", out_of_memory)
    ckpt = tmp_path / "dcn.pt"
    ckpt.write_bytes(b"an earlier epoch")
    code, _, err = run(capsys, "train", "dcn", lgg_folder, ckpt, "--size", "32")
    assert code == 2 and err.count("\n") == 1 and "lower --batch-size or --size" in err, err
    assert err.endswith(f"{ckpt} holds the last finished epoch; re-run to resume\n") and ckpt.exists()
