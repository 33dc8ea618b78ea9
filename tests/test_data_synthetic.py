"""Synthetic data: glyphs (shape, determinism, learnability), low-rank ratings, regression task families."""

import math
import time

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from cs330.data.movielens import MovieLens
from cs330.data.synthetic import FAMILIES, make_glyphs, make_ratings, sample_regression_tasks

# -- glyphs -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def glyphs():
    return make_glyphs(n_alphabets=12, chars_per_alphabet=20, n_drawers=20, seed=0)


def test_glyph_shapes_and_values(glyphs):
    images, alphabets = glyphs
    assert images.shape == (240, 20, 1, 28, 28) and images.dtype == torch.uint8
    assert set(images.unique().tolist()) == {0, 1}
    assert alphabets.tolist() == [a for a in range(12) for _ in range(20)]
    ink = images.float().mean(dim=(2, 3, 4))  # (classes, drawers)
    assert ink.min() > 0.01 and ink.max() < 0.5  # every image has some ink, none is a blob
    assert make_glyphs(2, 3, n_drawers=4, image_size=40, seed=0).images.shape == (6, 4, 1, 40, 40)


def test_glyphs_deterministic(glyphs):
    assert torch.equal(make_glyphs(n_alphabets=12, chars_per_alphabet=20, seed=0).images, glyphs.images)
    assert not torch.equal(make_glyphs(n_alphabets=12, chars_per_alphabet=20, seed=1).images, glyphs.images)


def test_glyphs_fast():
    start = time.perf_counter()
    images, _ = make_glyphs(n_alphabets=50, chars_per_alphabet=20, n_drawers=20, seed=0)
    assert images.shape[:2] == (1000, 20)
    assert time.perf_counter() - start < 10  # about 0.5 s on one core


def _blur(images):
    return F.avg_pool2d(images.float().flatten(0, 1), 5, 1, 2).flatten(1)


def test_classes_differ_more_than_drawers(glyphs):
    x = _blur(glyphs.images[:60]).view(60, 20, -1)  # 60 classes
    within = torch.stack([torch.pdist(x[c]).mean() for c in range(60)]).mean()
    between = torch.cdist(x[:, 0], x[:, 0])[~torch.eye(60, dtype=torch.bool)].mean()
    assert within < 0.8 * between
    # classes of one alphabet resemble each other more than classes of different alphabets
    same = torch.tensor([a == b for a in range(3) for b in range(3)]).view(3, 3)
    same = same.repeat_interleave(20, 0).repeat_interleave(20, 1)
    d = torch.cdist(x[:, 0], x[:, 0])
    off = ~torch.eye(60, dtype=torch.bool)
    assert d[same & off].mean() < d[~same].mean()


def _episode(data, g, way=5, shot=1, query=5):
    """(way, shot, ...) support and (way, query, ...) query examples from (C, D, ...)."""
    classes = torch.randperm(data.shape[0], generator=g)[:way]
    drawers = torch.argsort(torch.rand(way, data.shape[1], generator=g), dim=1)[:, : shot + query]
    x = data[classes[:, None], drawers].float()
    return x[:, :shot], x[:, shot:]


def _accuracy(features, episodes=200, seed=1):
    """Mean 5-way 1-shot accuracy of nearest-prototype classification on features (C, D, F)."""
    g, correct = torch.Generator().manual_seed(seed), []
    for _ in range(episodes):
        s, q = _episode(features, g)
        pred = torch.cdist(q.flatten(0, 1), s.flatten(0, 1)).argmin(1)
        correct.append((pred == torch.arange(5).repeat_interleave(q.shape[1])).float().mean())
    return torch.stack(correct).mean().item()


def test_glyphs_learnable(glyphs):
    """Held-out alphabets: raw-pixel nearest centroid beats chance (0.2), a tiny ProtoNet beats it more."""
    train, test = glyphs.images[glyphs.alphabets < 9], glyphs.images[glyphs.alphabets >= 9]
    assert _accuracy(test.float().flatten(2)) > 0.45
    block = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))  # noqa: E731
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(block(1, 16), block(16, 16), block(16, 16), block(16, 16), nn.Flatten())
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        g = torch.Generator().manual_seed(0)
        for _ in range(40):  # 10-way 1-shot training episodes
            s, q = _episode(train, g, way=10)
            logits = -torch.cdist(net(q.flatten(0, 1)), net(s.flatten(0, 1))) ** 2
            loss = F.cross_entropy(logits, torch.arange(10).repeat_interleave(q.shape[1]))
            opt.zero_grad(), loss.backward(), opt.step()
    net.eval()
    with torch.no_grad():
        features = net(test.flatten(0, 1).float()).view(*test.shape[:2], -1)
    assert _accuracy(features) > 0.6


# -- ratings ----------------------------------------------------------------------------------


def test_ratings_structure():
    data, f = make_ratings(n_users=300, n_items=400, rank=4, seed=0, return_factors=True)
    assert isinstance(data, MovieLens) and (data.n_users, data.n_items) == (300, 400)
    assert data.ratings.dtype == torch.float32 and set(data.ratings.unique().tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}
    assert len(set(zip(data.users.tolist(), data.items.tolist()))) == len(data)  # no repeated pair
    assert data.user_counts().min() >= 5 and len(data) < 0.2 * 300 * 400  # sparse
    assert f["p"].shape == (300, 4) and f["q"].shape == (400, 4)
    # ratings follow the low-rank scores
    r = torch.corrcoef(torch.stack([data.ratings, f["scores"][data.users, data.items]]))[0, 1]
    assert r > 0.8
    again = make_ratings(n_users=300, n_items=400, rank=4, seed=0)
    assert torch.equal(again.items, data.items) and torch.equal(again.ratings, data.ratings)
    train, test = data.split(0.1, seed=0)
    assert len(train) + len(test) == len(data)


# -- regression tasks -------------------------------------------------------------------------


@pytest.mark.parametrize("family", FAMILIES)
def test_regression_shapes_ranges(family):
    t = sample_regression_tasks(family, 64, 5, 7, torch.Generator().manual_seed(0))
    assert t.x_support.shape == t.y_support.shape == (64, 5, 1) and t.x_query.shape == t.y_query.shape == (64, 7, 1)
    assert t.x_support.abs().max() <= 5 and t.x_query.abs().max() <= 5
    kind, p = t.params["kind"], t.params
    sine = kind == 0
    assert {"sinusoid": sine.all(), "line": (~sine).all(), "mixture": 0 < sine.sum() < 64}[family]
    assert ((p["amplitude"][sine] >= 0.1) & (p["amplitude"][sine] <= 5)).all()
    assert ((p["phase"][sine] >= 0) & (p["phase"][sine] <= math.pi)).all()
    assert (p["slope"][~sine].abs() <= 3).all() and (p["intercept"][~sine].abs() <= 3).all()
    torch.testing.assert_close(t.evaluate(t.x_query), t.y_query)  # noiseless
    x = torch.linspace(-5, 5, 50)
    assert t.evaluate(x).shape == (64, 50, 1)
    expected = torch.where(sine[:, None], p["amplitude"][:, None] * torch.sin(x - p["phase"][:, None]),
                           p["slope"][:, None] * x + p["intercept"][:, None])
    torch.testing.assert_close(t.evaluate(x)[..., 0], expected)


def test_regression_seeded_and_noisy():
    a = sample_regression_tasks("mixture", 8, 3, 3, torch.Generator().manual_seed(5), noise_std=0.3)
    b = sample_regression_tasks("mixture", 8, 3, 3, torch.Generator().manual_seed(5), noise_std=0.3)
    assert torch.equal(a.y_support, b.y_support) and torch.equal(a.params["kind"], b.params["kind"])
    assert not torch.allclose(a.evaluate(a.x_support), a.y_support)
    with pytest.raises(ValueError, match="family"):
        sample_regression_tasks("cubic", 1, 1, 1)
