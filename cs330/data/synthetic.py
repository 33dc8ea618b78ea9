"""Synthetic datasets that need no files, deterministic for a seed.

- ``make_glyphs``: an Omniglot-like set of stroke-drawn characters, grouped by class,
  (n_classes, n_drawers, 1, H, W) uint8, for few-shot classification.
- ``make_ratings``: low-rank users x items ratings 1..5, a ``MovieLens`` with no files.
- ``sample_regression_tasks``: sinusoid / line / mixed regression tasks for meta-learning.
- ``sample_tagged_sinusoids``: a non-mutually-exclusive sinusoid family (the task readable from a tag).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from cs330.data.movielens import MovieLens

# ----------------------------------------------------------------------------------------------
# Glyphs: procedurally drawn characters
#
# A character is 1-4 strokes; a stroke is a cubic Bezier curve B(t) = sum_k C(3,k) t^k (1-t)^(3-k) P_k.
# Each alphabet has a style: a small bank of stroke shapes (how the inner control points bend away
# from the chord P0->P3), a typical number of strokes and stroke length, a pen width, and how often
# a stroke starts where the previous one ended. A character picks shapes from its alphabet's bank
# and places them at random. Each drawer redraws the character with control-point noise, a random
# affine map (rotation, scale, shear, shift) and its own pen width. Strokes are rasterised at 2x
# resolution (dense points along each curve, dilated by the pen), then 2x2 average-pooled and
# thresholded to binary ink.


class GlyphSet(NamedTuple):
    """images: (n_classes, n_drawers, 1, H, W) uint8, 1 = ink, 0 = background.
    alphabets: (n_classes,) int64 alphabet id of each class (classes of one alphabet are contiguous)."""

    images: Tensor
    alphabets: Tensor


def _bezier(ctrl: Tensor, n_points: int) -> Tensor:
    """Points along cubic Beziers. ctrl: (..., 4, 2) -> (..., n_points, 2)."""
    t = torch.linspace(0, 1, n_points, dtype=ctrl.dtype)[:, None]
    basis = torch.cat([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t), t**3], dim=1)  # (T, 4)
    return torch.einsum("tk,...kd->...td", basis, ctrl)


def _rotation(angle: Tensor) -> Tensor:
    """(...,) angles -> (..., 2, 2) rotation matrices."""
    c, s = angle.cos(), angle.sin()
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _characters(n_alphabets: int, chars_per_alphabet: int, g: torch.Generator) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Control points of each character, normalised to fit [-0.8, 0.8]^2.

    Returns ctrl (C, S, 4, 2), stroke mask (C, S) bool, pen width (C,), alphabet id (C,), with S = 5.
    """
    A, M, S, P = n_alphabets, chars_per_alphabet, 5, 6  # P = stroke shapes per alphabet
    C = A * M
    U = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    # alphabet style
    shapes = (U(A, P, 4) * 2 - 1) * (0.15 + 0.6 * U(A, 1, 1))  # (A, P, 4): perpendicular / along offsets of P1, P2
    mean_strokes = 2.0 + 2.5 * U(A)  # typical stroke count
    length = 0.8 + 0.8 * U(A)  # typical stroke length (canvas is [-1, 1])
    connect = 0.2 + 0.6 * U(A)  # probability that a stroke starts where the last one ended
    pen = 1.0 + 2.0 * U(A)  # pen width level, 1..3 (see _draw)
    alphabet = torch.arange(A).repeat_interleave(M)  # (C,)
    # character: stroke count, shapes, placement
    n_strokes = (mean_strokes[alphabet] + U(C) * 2 - 1).round().clamp(1, S).long()
    mask = torch.arange(S)[None, :] < n_strokes[:, None]  # (C, S)
    shape_id = torch.randint(P, (C, S), generator=g)
    offsets = shapes[alphabet[:, None], shape_id]  # (C, S, 4)
    angle = U(C, S) * 2 * math.pi
    lengths = length[alphabet][:, None] * (0.6 + 0.8 * U(C, S))
    starts = U(C, S, 2) * 1.4 - 0.7
    ctrl = torch.zeros(C, S, 4, 2)
    how = U(C, S)  # where a stroke starts: the previous stroke's end, a point on an earlier stroke, or anywhere
    for s in range(S):  # strokes in order, so that a stroke can start on an earlier one
        p0 = starts[:, s]
        if s > 0:
            t = U(C, 1)
            basis = torch.cat([(1 - t) ** 3, 3 * t * (1 - t) ** 2, 3 * t**2 * (1 - t), t**3], 1)  # (C, 4)
            earlier = ctrl[torch.arange(C), torch.randint(s, (C,), generator=g)]  # (C, 4, 2)
            on_stroke = torch.einsum("ck,ckd->cd", basis, earlier)
            p0 = torch.where((how[:, s] < connect[alphabet])[:, None], ctrl[:, s - 1, 3],
                             torch.where((how[:, s] < 0.9)[:, None], on_stroke, p0))
        d = torch.stack([angle[:, s].cos(), angle[:, s].sin()], -1) * lengths[:, s, None]  # chord (C, 2)
        n = torch.stack([-d[:, 1], d[:, 0]], -1)  # normal
        o = offsets[:, s]
        ctrl[:, s, 0] = p0
        ctrl[:, s, 1] = p0 + d * (1 / 3 + 0.3 * o[:, 2, None]) + n * o[:, 0, None]
        ctrl[:, s, 2] = p0 + d * (2 / 3 + 0.3 * o[:, 3, None]) + n * o[:, 1, None]
        ctrl[:, s, 3] = p0 + d
    # normalise each character: centre its bounding box, scale its larger side to 1.6
    pts = _bezier(ctrl, 16).masked_fill(~mask[:, :, None, None], float("nan")).flatten(1, 2)  # (C, S*16, 2)
    lo = torch.where(pts.isnan(), torch.inf, pts).amin(1)
    hi = torch.where(pts.isnan(), -torch.inf, pts).amax(1)
    centre, extent = (lo + hi) / 2, (hi - lo).amax(1).clamp(min=0.3)
    ctrl = (ctrl - centre[:, None, None]) * (1.6 / extent)[:, None, None, None]
    return ctrl, mask, pen[alphabet], alphabet


def _dilate(x: Tensor, plus: bool) -> Tensor:
    """Binary dilation of (N, H, W) bool images by a 3x3 plus or a 3x3 square (shifts, no convolution)."""
    p = F.pad(x, (1, 1, 1, 1))
    rows = p[:, 1:-1] | p[:, :-2] | p[:, 2:]  # vertical 3-neighbourhood, (N, H, W + 2)
    if plus:
        return rows[:, :, 1:-1] | p[:, 1:-1, :-2] | p[:, 1:-1, 2:]
    return rows[:, :, 1:-1] | rows[:, :, :-2] | rows[:, :, 2:]


def _draw(ctrl: Tensor, mask: Tensor, pen: Tensor, size: int, points_per_stroke: int) -> Tensor:
    """Rasterise strokes. ctrl (N, S, 4, 2) in [-1, 1]^2, mask (N, S), pen level (N,) in [1, 3] -> (N, size, size) bool.

    Pen level 1 dilates the curve's pixels by a plus, 2 by a 3x3 square, 3 by both (a 5x5 octagon).
    """
    N = ctrl.shape[0]
    pix = ((_bezier(ctrl, points_per_stroke) + 1) / 2 * (size - 1)).round().long().clamp(0, size - 1)
    flat = pix[..., 1] * size + pix[..., 0]  # (N, S, T)
    flat = torch.where(mask[:, :, None], flat, size * size)  # unused strokes go to a spare pixel
    flat = flat + torch.arange(N)[:, None, None] * (size * size + 1)
    canvas = torch.zeros(N * (size * size + 1), dtype=torch.bool)
    canvas[flat.reshape(-1)] = True
    canvas = canvas.view(N, size * size + 1)[:, :-1].reshape(N, size, size)
    level = pen.round().clamp(1, 3).long()[:, None, None]
    out = torch.where(level == 1, _dilate(canvas, plus=True), _dilate(canvas, plus=False))
    return torch.where(level == 3, _dilate(out, plus=True), out)


def make_glyphs(
    n_alphabets: int = 50,
    chars_per_alphabet: int = 20,
    n_drawers: int = 20,
    image_size: int = 28,
    seed: int = 0,
    jitter: float = 1.5,
) -> GlyphSet:
    """An Omniglot-like set of procedurally drawn characters, deterministic for ``seed``.

    Returns a GlyphSet: images (n_alphabets * chars_per_alphabet, n_drawers, 1, image_size, image_size)
    uint8 (1 = ink) and alphabets (n_classes,) int64. Classes of an alphabet share a stroke style,
    so they resemble each other more than classes of other alphabets (split by alphabet for a
    background / evaluation split, as with Omniglot). ~1000 classes x 20 drawers take under a second.

    ``jitter`` scales how differently drawers draw a character (control-point noise, rotation, scale,
    shear, shift). At 1.5, nearest-centroid on raw pixels gets ~65% on 5-way 1-shot (real Omniglot
    at 28x28: ~47%); at 2.0 it is about as hard as real Omniglot for that baseline; a conv net does far better.
    """
    g = torch.Generator().manual_seed(seed)
    ctrl, mask, pen, alphabet = _characters(n_alphabets, chars_per_alphabet, g)
    C, S, D = ctrl.shape[0], ctrl.shape[1], n_drawers
    U = lambda *shape: torch.rand(*shape, generator=g)  # noqa: E731
    # drawers: control-point noise, then an affine map x -> A x + b, then their own pen
    noisy = ctrl[:, None] + 0.05 * jitter * torch.randn(C, D, S, 4, 2, generator=g)  # (C, D, S, 4, 2)
    rot = _rotation(0.12 * jitter * torch.randn(C, D, generator=g))
    scale = torch.diag_embed(1 + 0.1 * jitter * (2 * U(C, D, 2) - 1))
    shear = torch.eye(2).repeat(C, D, 1, 1)
    shear[..., 0, 1] = 0.12 * jitter * torch.randn(C, D, generator=g)
    A = rot @ shear @ scale  # (C, D, 2, 2)
    b = 0.06 * jitter * torch.randn(C, D, 1, 1, 2, generator=g)
    drawn = torch.einsum("cdij,cdskj->cdski", A, noisy) + b
    pens = pen[:, None] + 0.4 * torch.randn(C, D, generator=g)
    big = 2 * image_size
    images = torch.empty(C * D, 1, image_size, image_size, dtype=torch.uint8)
    flat_ctrl, flat_pen = drawn.reshape(C * D, S, 4, 2), pens.reshape(C * D)
    flat_mask = mask[:, None].expand(C, D, S).reshape(C * D, S)
    for i in range(0, C * D, 4096):  # chunks bound the memory (4096 x 56 x 56 floats ~ 50 MB)
        j = slice(i, i + 4096)
        hi = _draw(flat_ctrl[j], flat_mask[j], flat_pen[j], big, points_per_stroke=2 * big)
        images[j] = (F.avg_pool2d(hi[:, None].float(), 2) >= 0.25).to(torch.uint8)
    return GlyphSet(images.view(C, D, 1, image_size, image_size), alphabet)


# ----------------------------------------------------------------------------------------------
# Low-rank ratings


def make_ratings(
    n_users: int = 500,
    n_items: int = 1000,
    rank: int = 8,
    ratings_per_user: int = 50,
    noise: float = 0.3,
    seed: int = 0,
    return_factors: bool = False,
):
    """Synthetic explicit ratings from a low-rank model, as a ``MovieLens`` (no files needed).

    Model:  r_ui = clamp(round(mu + b_u + c_i + <p_u, q_i> + eps), 1, 5)
    with p_u, q_i ~ N(0, I_rank / sqrt(rank)), b_u ~ N(0, 0.3^2), c_i ~ N(0, 0.5^2), mu = 3.5, eps ~ N(0, noise^2).

    Observed entries: user u rates n_u ~ ratings_per_user * LogNormal(0, 0.7) items (clamped to
    [5, n_items // 2]), drawn without replacement with probability proportional to a Zipf-like item
    popularity (Gumbel top-k). Timestamps increase with each user's rating order.
    With return_factors, also returns dict(p=(n_users, rank), q=(n_items, rank), b_user, b_item, mu, scores).
    """
    g = torch.Generator().manual_seed(seed)
    p = torch.randn(n_users, rank, generator=g) / rank**0.25
    q = torch.randn(n_items, rank, generator=g) / rank**0.25
    b_user, b_item, mu = 0.3 * torch.randn(n_users, generator=g), 0.5 * torch.randn(n_items, generator=g), 3.5
    scores = mu + b_user[:, None] + b_item[None, :] + p @ q.T  # (n_users, n_items)
    # which entries are observed
    counts = (ratings_per_user * torch.exp(0.7 * torch.randn(n_users, generator=g))).round().long()
    counts = counts.clamp(min(5, n_items), max(n_items // 2, min(5, n_items)))
    popularity = torch.randperm(n_items, generator=g).float().add(1).pow(-0.8)  # Zipf-like, random order
    gumbel = -torch.log(-torch.log(torch.rand(n_users, n_items, generator=g).clamp(1e-12, 1 - 1e-12)))
    order = torch.argsort(popularity.log()[None, :] + gumbel, dim=1, descending=True)
    observed = torch.arange(n_items)[None, :] < counts[:, None]  # first n_u of each user's order
    users = torch.arange(n_users)[:, None].expand(-1, n_items)[observed]
    items = order[observed]
    eps = noise * torch.randn(users.numel(), generator=g)
    ratings = (scores[users, items] + eps).round().clamp(1, 5)
    rank_in_user = torch.arange(n_items)[None, :].expand(n_users, -1)[observed]
    timestamps = 1_000_000_000 + users * 10_000 + rank_in_user * 60
    data = MovieLens.from_tensors(users, items, ratings, timestamps, n_users, n_items,
                                  name=f"synthetic-ratings(rank={rank}, seed={seed})")
    if return_factors:
        return data, dict(p=p, q=q, b_user=b_user, b_item=b_item, mu=mu, scores=scores)
    return data


# ----------------------------------------------------------------------------------------------
# Regression task families (MAML-style)

FAMILIES = ("sinusoid", "line", "mixture")


@dataclass
class RegressionTasks:
    """A batch of B regression tasks with K support and Q query points each.

    x_support, y_support: (B, K, 1); x_query, y_query: (B, Q, 1).
    params: the true task parameters, each (B,): kind (0 sinusoid, 1 line), amplitude, phase,
    slope, intercept (the unused ones of a task are 0). ``evaluate(x)`` gives the noiseless y.
    """

    x_support: Tensor
    y_support: Tensor
    x_query: Tensor
    y_query: Tensor
    params: dict[str, Tensor]

    def evaluate(self, x: Tensor) -> Tensor:
        """True function of each task at x: (B, N, 1) or (N,) -> (B, N, 1)."""
        if x.dim() == 1:
            x = x[None, :, None].expand(self.params["kind"].numel(), -1, 1)
        return _true_y(self.params, x.to(self.x_support))

    def to(self, device) -> "RegressionTasks":
        return RegressionTasks(self.x_support.to(device), self.y_support.to(device), self.x_query.to(device),
                               self.y_query.to(device), {k: v.to(device) for k, v in self.params.items()})


def _true_y(params: dict[str, Tensor], x: Tensor) -> Tensor:
    """y = A sin(x - phase) for sinusoids (kind 0), y = slope x + intercept for lines (kind 1)."""
    p = {k: v[:, None, None] for k, v in params.items()}
    sine = p["amplitude"] * torch.sin(x - p["phase"])
    line = p["slope"] * x + p["intercept"]
    return torch.where(p["kind"] == 0, sine, line)


def sample_regression_tasks(
    family: str,
    batch_size: int,
    k_support: int,
    k_query: int,
    generator: torch.Generator | None = None,
    noise_std: float = 0.0,
    x_range: tuple[float, float] = (-5.0, 5.0),
    device: torch.device | str | None = None,
) -> RegressionTasks:
    """Sample ``batch_size`` tasks of a family and their support / query points.

    sinusoid: y = A sin(x - phi), A ~ U[0.1, 5], phi ~ U[0, pi] (Finn et al., 2017, MAML)
    line:     y = a x + b, a ~ U[-3, 3], b ~ U[-3, 3]
    mixture:  each task is a sinusoid or a line with probability 1/2 (ambiguous from a few points)
    x ~ U[x_range] independently for every point; y gets N(0, noise_std^2) noise if noise_std > 0.
    The draws come from ``generator`` (its device decides where they are made), then move to ``device``.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; choose one of {FAMILIES}")
    gdev = generator.device if generator is not None else torch.device("cpu")
    B = batch_size
    U = lambda lo, hi, *shape: lo + (hi - lo) * torch.rand(*shape, generator=generator, device=gdev)  # noqa: E731
    kind = {"sinusoid": torch.zeros(B, device=gdev), "line": torch.ones(B, device=gdev),
            "mixture": (torch.rand(B, generator=generator, device=gdev) < 0.5).float()}[family]
    is_sine = kind == 0
    params = {
        "kind": kind.long(),
        "amplitude": U(0.1, 5.0, B) * is_sine,
        "phase": U(0.0, math.pi, B) * is_sine,
        "slope": U(-3.0, 3.0, B) * ~is_sine,
        "intercept": U(-3.0, 3.0, B) * ~is_sine,
    }
    x = U(x_range[0], x_range[1], B, k_support + k_query, 1)
    y = _true_y(params, x)
    if noise_std > 0:
        y = y + noise_std * torch.randn(y.shape, generator=generator, device=gdev)
    tasks = RegressionTasks(x[:, :k_support], y[:, :k_support], x[:, k_support:], y[:, k_support:], params)
    return tasks.to(device) if device is not None else tasks


def sample_tagged_sinusoids(
    batch_size: int,
    k_support: int,
    k_query: int,
    n_slots: int = 10,
    split: str = "train",
    generator: torch.Generator | None = None,
    seed: int = 0,
    x_range: tuple[float, float] = (-5.0, 5.0),
) -> RegressionTasks:
    """A non-mutually-exclusive sinusoid family: the task can be read off the input alone.

    There are ``n_slots`` slots; each task belongs to slot m ~ U{0..n_slots-1}, stored in
    ``params["slot"]`` (B,), and a model is meant to see the slot with every point, e.g. as a one-hot
    tag (``tag_inputs``). split="train": slot m always holds the same sinusoid A_m sin(x - phi_m),
    (A_m, phi_m) drawn once from ``seed`` (ranges as ``sample_regression_tasks``), so the tag alone
    identifies the function and a network can memorise all n_slots functions and ignore the support
    set. split="test": the slots are the same but every task draws a fresh (A, phi), so only the
    support set tells what the function is. x ~ U[x_range]; shapes as ``sample_regression_tasks``.
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    fixed = torch.Generator().manual_seed(seed)
    amplitudes = 0.1 + 4.9 * torch.rand(n_slots, generator=fixed)
    phases = math.pi * torch.rand(n_slots, generator=fixed)
    B = batch_size
    slot = torch.randint(n_slots, (B,), generator=generator)
    if split == "train":
        amplitude, phase = amplitudes[slot], phases[slot]
    else:
        amplitude = 0.1 + 4.9 * torch.rand(B, generator=generator)
        phase = math.pi * torch.rand(B, generator=generator)
    zeros = torch.zeros(B)
    params = {"kind": torch.zeros(B, dtype=torch.long), "amplitude": amplitude, "phase": phase,
              "slope": zeros, "intercept": zeros, "slot": slot}
    x = x_range[0] + (x_range[1] - x_range[0]) * torch.rand(B, k_support + k_query, 1, generator=generator)
    y = _true_y(params, x)
    return RegressionTasks(x[:, :k_support], y[:, :k_support], x[:, k_support:], y[:, k_support:], params)


def tag_inputs(x: Tensor, slot: Tensor, n_slots: int) -> Tensor:
    """x (B, n, 1) and slots (B,) -> (B, n, 1 + n_slots): each point with its task's one-hot slot tag."""
    tag = F.one_hot(slot, n_slots).to(x.dtype)[:, None, :].expand(-1, x.shape[1], -1)
    return torch.cat([x, tag], dim=-1)
