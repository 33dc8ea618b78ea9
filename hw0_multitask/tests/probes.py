"""Probes: the code the autograder runs beside your model.py, in the sandboxed process that runs your
code, when a check needs more than one call (seeding, setting weights, a backward pass, training).

Each probe takes ``code`` first (your homework's modules: ``code.model``, ``code.train``) and
returns data (tensors, numbers, lists, dicts) or a model. The same probe run on the reference
solution gives what a hidden check compares with. Nothing here is secret: it ships with the tests.
"""

import torch

from cs330.data.movielens import MovieLens

N_USERS, N_ITEMS, DIM, HIDDEN = 7, 11, 4, 5


def batch(n=9, seed=1):
    """Seeded (users, items, other items, ratings), each (n,)."""
    g = torch.Generator().manual_seed(seed)
    users = torch.randint(N_USERS, (n,), generator=g)
    items, others = torch.randint(N_ITEMS, (2, n), generator=g)
    ratings = torch.randint(1, 6, (n,), generator=g).float()
    return users, items, others, ratings


def make(code, arch="shared", seed=0, **kw):
    """A small model, its initial weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return code.model.MultiTaskRecommender(N_USERS, N_ITEMS, dim=DIM, hidden=HIDDEN, arch=arch, **kw)


def randomize(net, seed=2):
    """Give every parameter seeded N(0, 0.5^2) values (so that no check depends on the init)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(0.5 * torch.randn(p.shape, generator=g))
    return net


def randomized(code, arch="shared", seed=2, **kw):
    """``make`` then ``randomize``."""
    return randomize(make(code, arch, **kw), seed)


def with_weights(code, arch, weights, **kw):
    """``make``, then the named tensors of ``weights`` loaded over it (others keep their values)."""
    net = make(code, arch, **kw)
    net.load_state_dict(weights, strict=False)
    return net


def zero_mlp(code, net):
    """Set every parameter of ``net.mlp`` to zero (in place); returns ``net``."""
    with torch.no_grad():
        for p in net.mlp.parameters():
            p.zero_()
    return net


def dropout_outputs(code, dropout, n=4000, seed=0):
    """A fresh model's MLP (``dropout``) with its first Linear set to weight 0, bias 1 (every hidden unit
    is 1 after the ReLU) and its last Linear reading hidden unit 0 alone: its outputs on ``n`` inputs in
    training mode (each 0, dropped, or 1 / (1 - dropout)) and in eval mode (each 1)."""
    mlp = make(code, "shared", dropout=dropout).mlp
    linears = [m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]
    with torch.no_grad():
        linears[0].weight.zero_(), linears[0].bias.fill_(1.0)
        linears[-1].weight.zero_(), linears[-1].bias.zero_()
        linears[-1].weight[0, 0] = 1.0
    x = torch.zeros(n, linears[0].in_features)
    torch.manual_seed(seed)
    mlp.train()
    with torch.no_grad():
        train_out = mlp(x)
    mlp.eval()
    with torch.no_grad():
        eval_out = mlp(x)
    return {"train": train_out, "eval": eval_out}


def _grads(net):
    return {name: (p.grad.clone() if p.grad is not None else None) for name, p in net.named_parameters()}


def losses_and_grads(code, arch, state, lam=0.3, n=30):
    """task_losses and weighted_loss(., lam) of a model with the parameters ``state`` (eval mode) on a seeded
    batch, the scores and predicted ratings they are made of, and every parameter's gradient after
    ``weighted_loss(...).backward()``."""
    net = with_weights(code, arch, state)
    net.eval()
    users, items, others, ratings = batch(n)
    losses = code.model.task_losses(net, (users, items, others), (users, others, ratings))
    total = code.model.weighted_loss(losses, lam)
    total.backward()
    with torch.no_grad():
        pieces = {"pos_scores": net.score(users, items), "neg_scores": net.score(users, others),
                  "predicted": net.predict_rating(users, others)}
    return {"losses": losses, "total": total, "grads": _grads(net), **pieces}


def uncertainty(code, log_vars, losses):
    """UncertaintyWeighting(2) with ``log_vars`` set: its output on ``losses`` and d out / d log_vars."""
    weigher = code.model.UncertaintyWeighting(2)
    with torch.no_grad():
        weigher.log_vars.copy_(log_vars)
    out = weigher(losses)
    out.backward()
    return {"out": out, "grad": weigher.log_vars.grad}


def short_run(code, train, test_pairs, arch="shared", weighting="fixed", lam=0.5, seed=0, epochs=12):
    """Train with ``train.fit`` on ``train`` (a dict of users, items, ratings, n_users, n_items) and
    return, after every epoch, the predicted ratings of the held-out (user, item) pairs and the
    ranking scores of every item for every user. The held-out ratings never reach this process:
    the grader computes RMSE and MRR from these predictions."""
    torch.set_num_threads(1)
    train_set = MovieLens.from_tensors(train["users"], train["items"], train["ratings"],
                                       n_users=train["n_users"], n_items=train["n_items"])
    users, items = test_pairs
    test_set = MovieLens.from_tensors(users, items, torch.zeros(len(users)),
                                      n_users=train["n_users"], n_items=train["n_items"])
    predictions = []

    @torch.no_grad()
    def record(model, train_set, test_set):
        model.eval()
        predictions.append({"ratings": model.predict_rating(test_set.users, test_set.items),
                            "scores": model.score_all(torch.arange(train_set.n_users))})
        model.train()
        return {}

    torch.manual_seed(seed)
    net = code.model.MultiTaskRecommender(train_set.n_users, train_set.n_items, dim=32, hidden=64, arch=arch,
                                          dropout=0.3, rating_mean=float(train_set.ratings.mean()))
    history = code.train.fit(net, train_set, test_set, epochs=epochs, lam=lam, weighting=weighting, batch_size=256,
                             lr=1e-2, weight_decay=0.0, seed=seed, progress=False, log=None, evaluator=record)
    losses = [{"loss_rank": row["loss_rank"], "loss_rate": row["loss_rate"]} for row in history]
    return {"losses": losses, "predictions": predictions}
