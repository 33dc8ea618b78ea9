"""EpisodeSampler: shapes, label and class invariants, disjoint support/query, seeding, DataLoader workers."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from cs330.data.episodes import Episode, EpisodeSampler


def id_images(n_classes, n_per_class):
    """float (n_classes, n_per_class, 2, 1, 1): each example stores its own (class, drawer)."""
    c = torch.arange(n_classes).view(-1, 1).expand(n_classes, n_per_class)
    d = torch.arange(n_per_class).view(1, -1).expand(n_classes, n_per_class)
    return torch.stack([c, d], dim=-1).float().view(n_classes, n_per_class, 2, 1, 1)


def check_episode(ep: Episode, B, N, K, Q):
    assert ep.support_x.shape == (B, N * K, 2, 1, 1) and ep.query_x.shape == (B, N * Q, 2, 1, 1)
    assert ep.support_y.shape == (B, N * K) and ep.query_y.shape == (B, N * Q)
    assert ep.support_y.dtype == ep.query_y.dtype == torch.int64
    for b in range(B):
        s_cls, s_dr = ep.support_x[b, :, 0, 0, 0].long(), ep.support_x[b, :, 1, 0, 0].long()
        q_cls, q_dr = ep.query_x[b, :, 0, 0, 0].long(), ep.query_x[b, :, 1, 0, 0].long()
        assert torch.equal(torch.bincount(ep.support_y[b], minlength=N), torch.full((N,), K))
        assert torch.equal(torch.bincount(ep.query_y[b], minlength=N), torch.full((N,), Q))
        label_to_class = {}
        for y, c in zip(ep.support_y[b].tolist() + ep.query_y[b].tolist(), s_cls.tolist() + q_cls.tolist()):
            assert label_to_class.setdefault(y, c) == c  # one class per label, in support and query
        assert len(set(label_to_class.values())) == N  # N distinct classes
        support = set(zip(s_cls.tolist(), s_dr.tolist()))
        query = set(zip(q_cls.tolist(), q_dr.tolist()))
        assert len(support) == N * K and len(query) == N * Q and not support & query


@settings(max_examples=40, deadline=None)
@given(n_classes=st.integers(1, 12), n_per_class=st.integers(1, 8), data=st.data(),
       batch_size=st.integers(1, 4), shuffle=st.booleans(), seed=st.integers(0, 2**31))
def test_invariants(n_classes, n_per_class, data, batch_size, shuffle, seed):
    N = data.draw(st.integers(1, n_classes))
    K = data.draw(st.integers(1, n_per_class))
    Q = data.draw(st.integers(0, n_per_class - K))
    sampler = EpisodeSampler(id_images(n_classes, n_per_class), N, K, Q, batch_size,
                             generator=seed, num_batches=2, shuffle=shuffle)
    episodes = list(sampler)
    assert len(episodes) == len(sampler) == 2
    for ep in episodes:
        check_episode(ep, batch_size, N, K, Q)


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**40), shuffle=st.booleans())
def test_same_seed_same_episodes(seed, shuffle):
    images = id_images(10, 6)
    a = list(EpisodeSampler(images, 3, 2, 2, 4, generator=seed, num_batches=3, shuffle=shuffle))
    b = list(EpisodeSampler(images, 3, 2, 2, 4, generator=seed, num_batches=3, shuffle=shuffle))
    for x, y in zip(a, b):
        assert all(torch.equal(u, v) for u, v in zip(x, y))


def test_seed_sources():
    images = id_images(50, 10)
    first = lambda s: next(iter(s)).support_x  # noqa: E731
    assert not torch.equal(first(EpisodeSampler(images, 5, 2, 3, 8, generator=0)),
                           first(EpisodeSampler(images, 5, 2, 3, 8, generator=1)))
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(first(EpisodeSampler(images, 5, 2, 3, 8, generator=g1)),
                       first(EpisodeSampler(images, 5, 2, 3, 8, generator=g2)))
    torch.manual_seed(3)
    a = first(EpisodeSampler(images, 5, 2, 3, 8))
    torch.manual_seed(3)
    assert torch.equal(a, first(EpisodeSampler(images, 5, 2, 3, 8)))
    s = EpisodeSampler(images, 5, 2, 3, 8, generator=0)
    e0 = first(s)
    assert torch.equal(e0, first(s))  # iterating again replays the epoch
    s.set_epoch(1)
    assert not torch.equal(e0, first(s))


def test_labels_are_a_random_relabelling():
    """Label 0 is not always the smallest class id: the class order inside a task is random."""
    ep = next(iter(EpisodeSampler(id_images(20, 4), 5, 1, 1, 200, generator=0)))
    classes = ep.support_x[:, :, 0, 0, 0]  # (B, N): class of label j is classes[:, j]
    assert (classes[:, 0] == classes.min(1).values).float().mean() < 0.5
    chosen = torch.bincount(classes.flatten().long(), minlength=20)
    assert chosen.min() > 0  # every class gets used


def test_uint8_scaling_and_dataset_input():
    img = torch.randint(0, 256, (6, 5, 1, 4, 4), dtype=torch.uint8)
    ep = next(iter(EpisodeSampler(img, 2, 1, 1, generator=0)))
    assert ep.support_x.dtype == torch.float32 and 0 <= ep.support_x.min() and ep.support_x.max() <= 1
    assert set((ep.support_x * 255).round().flatten().tolist()) <= set(img.flatten().float().tolist())
    mask = torch.randint(0, 2, (6, 5, 1, 4, 4), dtype=torch.uint8)  # 0/1 glyph masks stay 0/1

    class DS:
        images = mask

    ep = next(iter(EpisodeSampler(DS(), 2, 1, 1, generator=0)))
    assert set(ep.query_x.unique().tolist()) <= {0.0, 1.0} and ep.query_x.max() == 1.0


def test_impossible_requests_name_the_numbers():
    images = id_images(5, 4)
    with pytest.raises(ValueError, match=r"n_way=6 .* 5 classes"):
        EpisodeSampler(images, 6, 1, 1)
    with pytest.raises(ValueError, match=r"3 \+ 2 = 5 .* 4 examples per class"):
        EpisodeSampler(images, 2, 3, 2)
    with pytest.raises(ValueError, match="k_shot"):
        EpisodeSampler(images, 2, 0, 1)
    with pytest.raises(ValueError, match="n_classes, n_per_class"):
        EpisodeSampler(torch.zeros(5, 4), 2, 1, 1)
    with pytest.raises(TypeError, match="infinite"):
        len(EpisodeSampler(images, 2, 1, 1))


def test_dataloader_with_workers_matches_plain_iteration():
    images = id_images(30, 8)
    sampler = EpisodeSampler(images, 5, 2, 3, 4, generator=123, num_batches=6)
    plain = list(sampler)
    loader = torch.utils.data.DataLoader(sampler, batch_size=None, num_workers=2)
    loaded = list(loader)
    assert len(loaded) == 6
    for a, b in zip(plain, loaded):
        assert isinstance(b, Episode)
        assert all(torch.equal(u, v) for u, v in zip(a, b))
    for ep in loaded:
        check_episode(ep, 4, 5, 2, 3)


def test_episode_to_device():
    ep = next(iter(EpisodeSampler(id_images(5, 4), 2, 1, 1, generator=0)))
    moved = ep.to("cpu")
    assert isinstance(moved, Episode) and all(torch.equal(a, b) for a, b in zip(ep, moved))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_images_on_gpu():
    images = id_images(10, 6).cuda()
    ep = next(iter(EpisodeSampler(images, 3, 2, 2, 4, generator=0)))
    assert all(t.is_cuda for t in ep)
    cpu = next(iter(EpisodeSampler(images.cpu(), 3, 2, 2, 4, generator=0)))
    assert all(torch.equal(a.cpu(), b) for a, b in zip(ep, cpu))
