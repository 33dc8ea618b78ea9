"""Non-mutually-exclusive task families: fixed-label episodes and tagged sinusoids; the MLP regressor."""

import torch
from torch.func import functional_call

from cs330.data import EpisodeSampler, NonExclusiveEpisodeSampler, sample_tagged_sinusoids
from cs330.data.synthetic import tag_inputs
from cs330.models import MLP


def test_nonexclusive_episodes_fix_the_class_to_label_map():
    images = torch.arange(23)[:, None, None].expand(23, 20, 3).clone()  # item = its class id, 23 classes
    sampler = NonExclusiveEpisodeSampler(images, n_way=5, k_shot=2, n_query=3, batch_size=64, generator=0)
    sx, sy, qx, qy = next(iter(sampler))
    assert sx.shape == (64, 10, 3) and qx.shape == (64, 15, 3)
    for x, y in ((sx, sy), (qx, qy)):
        cls = x[..., 0].long()
        assert torch.equal(cls % 5, y), "label j must always be a class of group j (class % n_way)"
    assert len(set(sx[:, 0, 0].tolist())) > 2, "the class of a label varies across tasks"
    assert set(sx[:, :2, 0].flatten().tolist()) <= set(range(0, 23, 5))
    again = next(iter(NonExclusiveEpisodeSampler(images, 5, 2, 3, batch_size=64, generator=0)))
    assert torch.equal(again.support_x, sx), "reproducible for a seed"
    drawers = torch.arange(20)[None, :, None].expand(23, 20, 1).clone()
    ep = next(iter(NonExclusiveEpisodeSampler(drawers, 5, 2, 3, batch_size=8, generator=1)))
    both = torch.cat([ep.support_x.view(8, 5, 2), ep.query_x.view(8, 5, 3)], 2)  # (B, N, K+Q) drawer ids
    assert all(len(set(both[b, j].tolist())) == 5 for b in range(8) for j in range(5)), "distinct drawers"
    ordinary = next(iter(EpisodeSampler(images, 5, 2, 3, batch_size=64, generator=0)))
    assert not torch.equal(ordinary.support_x[..., 0].long() % 5, ordinary.support_y), "ordinary tasks relabel"


def test_tagged_sinusoids_train_slots_are_fixed_test_slots_are_not():
    g = torch.Generator().manual_seed(0)
    train = sample_tagged_sinusoids(200, 5, 5, n_slots=4, split="train", generator=g)
    slot = train.params["slot"]
    for m in range(4):
        amps = train.params["amplitude"][slot == m]
        assert amps.numel() > 0 and torch.allclose(amps, amps[0].expand_as(amps)), "a training slot is one function"
    assert torch.allclose(train.y_support, train.evaluate(train.x_support))
    test = sample_tagged_sinusoids(200, 5, 5, n_slots=4, split="test", generator=g)
    amps = test.params["amplitude"][test.params["slot"] == 0]
    assert amps.unique().numel() == amps.numel() > 1, "test tasks draw fresh functions in every slot"
    x = tag_inputs(train.x_support, slot, 4)
    assert x.shape == (200, 5, 5) and torch.equal(x[..., 1:].argmax(-1), slot[:, None].expand(-1, 5))


def test_mlp_shapes_names_and_functional_call():
    torch.manual_seed(0)
    net = MLP(1, 2, (8, 8))
    assert [n for n, _ in net.named_parameters()] == ["body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias",
                                                      "head.weight", "head.bias"]
    x = torch.randn(3, 7, 1)
    assert net(x).shape == (3, 7, 2)
    params = {n: torch.zeros_like(p) for n, p in net.named_parameters()}
    assert torch.equal(functional_call(net, params, (x,)), torch.zeros(3, 7, 2))
