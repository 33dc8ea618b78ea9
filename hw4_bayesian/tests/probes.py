"""Probes: the code the autograder runs beside your modules, in the sandboxed process that runs your
code, when a check needs more than one call (a seeded model, a backward pass, a function argument,
a short training run).

Each probe takes ``code`` first (your homework's modules: ``code.gaussian``, ``code.blackbox``, ...)
and returns data (tensors, numbers, lists, dicts). The same probe run on the reference solution
gives what a hidden check compares with. Nothing here is secret: it ships with the tests.
"""

import functools

import torch

N_WAY = 5


def _grads(loss, params):
    """d loss / d p for each p of ``params`` (zeros where the loss does not reach p). The tests check these
    against differences of values (tests/slopes.py), taken with ``_move``."""
    grads = torch.autograd.grad(loss, params, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)]


def _move(params, moved):
    """Add h * v to each of ``params`` in place, outside autograd; ``moved``: (v, a list like params; h) or None."""
    if moved is not None:
        direction, h = moved
        for p, v in zip(params, direction):
            p.detach().add_(h * v.to(p.dtype))


# ---------------------------------------------------------------- question 1's functions as stated
#
# Questions 2-3 are graded on top of gaussian.py's functions *as their docstrings state them*, put in
# place of yours while a probe of questions 2-3 runs: a mistake in gaussian.py costs question 1's tests
# only. So call them by the names gaussian.py gives them (``from gaussian import kl_diag_gaussians``, any
# alias, or ``gaussian.kl_diag_gaussians``) with the given signatures, as the starter code does.
# Likewise 3d-3 and 3d-4 adapt with the stated ``support_neg_elbo``, so that 3d-0 to 3d-2 charge its
# mistakes. The stated functions are the test's (tests/stated.py), passed to a probe (``stated``,
# ``gaussian_nll``, ``neg_elbo``): in the autograder they are computed in the test's process, never in yours.

def _drawing(reparameterize):
    """``sample_gaussian`` with gaussian.py's given draw of eps, and the stated value for it."""
    def sample_gaussian(mu, logvar, n_samples=None, generator=None):
        shape = mu.shape if n_samples is None else (n_samples, *mu.shape)
        return reparameterize(mu, logvar, torch.randn(shape, generator=generator, dtype=mu.dtype, device=mu.device))
    return sample_gaussian


def on_stated_gaussian(*modules):
    """A probe of questions 2-3 that imports ``modules``, then runs with question 1's functions as stated (the
    keyword argument ``stated``, tests/stated.py's STATED) in place of the student's wherever their modules
    hold them (``Code.stand_ins``), put back after."""
    def decorate(probe):
        @functools.wraps(probe)
        def run(code, *args, stated, **kwargs):
            for name in modules:  # imported first, so that their names for the helpers are there to swap
                code.module(name)
            stand_ins = {name: stated[name] for name in ("kl_diag_gaussians", "gaussian_nll", "mixture_nll")}
            with code.stand_ins("gaussian", {**stand_ins, "sample_gaussian": _drawing(stated["reparameterize"])}):
                return probe(code, *args, **kwargs)
        return run
    return decorate


# ---------------------------------------------------------------- question 1: gaussian.py

def sample(code, mu, logvar, n_samples, seed):
    """``sample_gaussian(mu, logvar, n_samples, generator=torch.Generator().manual_seed(seed))``."""
    return code.gaussian.sample_gaussian(mu, logvar, n_samples, generator=torch.Generator().manual_seed(seed))


def mixture(code, y, mu, logvar, gaussian_nll):
    """Your ``mixture_nll(y, mu, logvar)``, with the stated ``gaussian_nll`` in place of yours (1c-0 grades yours)."""
    own = code.gaussian.mixture_nll
    with code.stand_ins("gaussian", {"gaussian_nll": gaussian_nll}):
        return own(y, mu, logvar)


def sample_grads(code, mu, logvar, n_samples, seed):
    """``sample_gaussian(mu, logvar, n_samples, generator)`` and the gradients of ``z.sum()`` in mu and logvar."""
    mu, logvar = mu.clone().requires_grad_(True), logvar.clone().requires_grad_(True)
    z = code.gaussian.sample_gaussian(mu, logvar, n_samples, generator=torch.Generator().manual_seed(seed))
    if not isinstance(z, torch.Tensor) or not z.requires_grad:
        return {"z": z, "d_mu": None, "d_logvar": None}
    d_mu, d_logvar = _grads(z.sum(), [mu, logvar])
    return {"z": z, "d_mu": d_mu, "d_logvar": d_logvar}


# ---------------------------------------------------------------- question 2: memorization.py, blackbox.py, maml.py

def shuffle(code, support_y, query_y, seed):
    """``shuffle_labels(support_y, query_y, 5, generator=torch.Generator().manual_seed(seed))``."""
    return code.memorization.shuffle_labels(support_y, query_y, N_WAY, torch.Generator().manual_seed(seed))


def _memoriser(support_x, support_y, query_x):
    """Logits from the query alone (ignores the support)."""
    return torch.nn.functional.one_hot(query_x[..., 0].long() % N_WAY, N_WAY).float()


def _follower(support_x, support_y, query_x):
    """Logits: one-hot of the label of the nearest support example (a learner that reads the support)."""
    d = torch.cdist(query_x, support_x)  # (B, M, NK)
    return torch.nn.functional.one_hot(support_y.gather(1, d.argmin(-1)), N_WAY).float()


def _half(support_x, support_y, query_x):
    """Reads the support in even tasks, ignores it in odd ones."""
    out = _follower(support_x, support_y, query_x)
    out[1::2] = _memoriser(support_x, support_y, query_x)[1::2]
    return out


PREDICTORS = {"memoriser": _memoriser, "follower": _follower, "half": _half}


def sensitivity(code, predictor, support_x, support_y, query_x, seed):
    """``support_sensitivity`` of one of the predictors above ("memoriser", "follower", "half")."""
    return code.memorization.support_sensitivity(PREDICTORS[predictor], support_x, support_y, query_x, N_WAY,
                                                 torch.Generator().manual_seed(seed))


@on_stated_gaussian("blackbox")
def blackbox_terms(code, images, beta, model_seed, seed, moved=None):
    """A seeded ``BlackBoxClassifier(5, hidden=8, stochastic=True)`` (training mode, the images' dtype): its
    ``loss`` terms on ``images`` = (support_x, support_y, query_x, query_y), the query codes' (mu, logvar) from
    ``encode``, and the gradients of the KL term in ``to_logvar.weight`` and the first conv's weight (``moved``
    first, if given: see ``_move``)."""
    torch.manual_seed(model_seed)
    model = code.blackbox.BlackBoxClassifier(N_WAY, hidden=8, stochastic=True).to(images[0].dtype)
    _move([model.to_logvar.weight, model.encoder.blocks[0].conv.weight], moved)
    total, ce, kl, _ = model.loss(*images, beta=beta, generator=torch.Generator().manual_seed(seed))
    _, (mu, logvar) = model.encode(images[2])
    out = {"total": total, "ce": ce, "kl": kl, "mu": mu, "logvar": logvar}
    if isinstance(kl, torch.Tensor) and kl.requires_grad:
        out["grads"] = _grads(kl, [model.to_logvar.weight, model.encoder.blocks[0].conv.weight])
    return out


def _mr_maml(code, seed, log_sigma=None):
    """A seeded MR-MAML on ``Conv4(5, hidden=8)``; ``log_sigma``: {name: tensor} loaded into its log-sigmas."""
    from cs330.models import Conv4

    torch.manual_seed(seed)
    model = code.maml.MRMAML(Conv4(N_WAY, hidden=8), init_log_sigma=-2.0, inner_steps=1, inner_lr=0.4, vectorize=False)
    if log_sigma is not None:
        for name, value in log_sigma.items():
            model.log_sigma[name].detach().copy_(value)  # a detached alias: set in place, outside autograd
    return model


@on_stated_gaussian("maml")
def mr_maml_state(code, seed=0):
    """The means {name: tensor} of a seeded MR-MAML's model, its log-sigmas {name: tensor} and ``stochastic``."""
    model = _mr_maml(code, seed)
    return {"mu": {n: p.detach() for n, p in model.model.named_parameters()},
            "log_sigma": {n: p.detach() for n, p in model.log_sigma.items()}, "stochastic": list(model.stochastic)}


@on_stated_gaussian("maml")
def mr_maml_samples(code, log_sigma, seeds, seed=0):
    """``meta_params(generator)`` of a seeded MR-MAML with ``log_sigma`` loaded, once per generator seed;
    and, for the first, the gradients of the sum of every sampled tensor in the means and the log-sigmas."""
    model = _mr_maml(code, seed, log_sigma)
    samples = [model.meta_params(torch.Generator().manual_seed(s)) for s in seeds]
    mus = dict(model.model.named_parameters())
    total = sum(v.sum() for v in samples[0].values())
    grads = {}
    if isinstance(total, torch.Tensor) and total.requires_grad:
        g_mu = _grads(total, list(mus.values()))
        g_ls = _grads(total, list(model.log_sigma.values()))
        grads = {"mu": dict(zip(mus, g_mu)), "log_sigma": dict(zip(model.log_sigma.keys(), g_ls))}
    return {"samples": [{n: v.detach() for n, v in s.items()} for s in samples], "grads": grads}


@on_stated_gaussian("maml")
def mr_maml_regularizer(code, log_sigma, seed=0):
    """``regularizer()`` of a seeded MR-MAML with ``log_sigma`` loaded, and its gradients in the means
    and log-sigmas."""
    model = _mr_maml(code, seed, log_sigma)
    kl = model.regularizer()
    out = {"kl": kl, "grads": None}
    if isinstance(kl, torch.Tensor) and kl.requires_grad:
        mus = dict(model.model.named_parameters())
        out["grads"] = {"mu": dict(zip(mus, _grads(kl, list(mus.values())))),
                        "log_sigma": dict(zip(model.log_sigma.keys(), _grads(kl, list(model.log_sigma.values()))))}
    return out


# ---------------------------------------------------------------- question 3: neural_process.py, ensemble_maml.py

@on_stated_gaussian("neural_process")
def np_elbo(code, tasks, model_seed, seed, moved=None):
    """A seeded ``NeuralProcess(latent=True, width=32, z_dim=8)`` (the tasks' dtype): ``elbo`` on ``tasks``
    (support_x, support_y, query_x, query_y) with ``torch.Generator().manual_seed(seed)``, the encoder's posterior
    and prior (``encode`` of support u query and of the support) and the gradients of ``log_lik.sum()`` in
    ``to_z``'s weight and bias (``moved`` first, if given: see ``_move``)."""
    sx, sy, qx, qy = tasks
    torch.manual_seed(model_seed)
    model = code.neural_process.NeuralProcess(latent=True, width=32, z_dim=8).to(sx.dtype)
    _move([model.to_z.weight, model.to_z.bias], moved)
    out = model.elbo(sx, sy, qx, qy, generator=torch.Generator().manual_seed(seed))
    if not isinstance(out, (tuple, list)) or len(out) != 3:
        return {"elbo": out}
    elbo, log_lik, kl = out
    post = tuple(t.detach() for t in model.encode(torch.cat([sx, qx], 1), torch.cat([sy, qy], 1)))
    prior = tuple(t.detach() for t in model.encode(sx, sy))
    result = {"elbo": elbo, "log_lik": log_lik, "kl": kl, "post": post, "prior": prior, "lik_grads": None}
    if isinstance(log_lik, torch.Tensor) and log_lik.requires_grad:
        result["lik_grads"] = _grads(log_lik.sum(), [model.to_z.weight, model.to_z.bias])
    return result


@on_stated_gaussian("ensemble_maml")
def ensemble_loss(code, tasks, model_seed, members=3):
    """A seeded ``EnsembleMAML(members, hidden=(16, 16), inner_steps=2, inner_lr=0.05)``: its ``loss`` on ``tasks``,
    every member's query (mu, logvar) from ``member_outputs(..., train=True)``, and the meta-gradients of the
    loss in every parameter (in ``named_parameters`` order)."""
    torch.manual_seed(model_seed)
    model = code.ensemble_maml.EnsembleMAML(members, hidden=(16, 16), inner_steps=2, inner_lr=0.05)
    loss = model.loss(*tasks)
    outputs = [tuple(t.detach() for t in model.member_outputs(m, *tasks[:3], train=True)) for m in range(members)]
    grads = _grads(loss, list(model.parameters())) if isinstance(loss, torch.Tensor) and loss.requires_grad else None
    return {"loss": loss, "outputs": outputs, "grads": grads, "names": [n for n, _ in model.named_parameters()]}


@on_stated_gaussian("train_regression")
def np_short_run(code, support_x, support_y, query_x, steps=400, seed=0):
    """``train_regression.train`` of the latent NP on sinusoids (``steps`` Adam steps at lr 3e-3, your ELBO),
    then the mean of its predictive mixture (32 samples) on the given tasks' queries (B, Q, 1) and the
    training loss history."""
    torch.set_num_threads(1)
    result, model = code.train_regression.train(method="np", family="sinusoid", steps=steps, lr=3e-3, eval_tasks=1,
                                                seed=seed, progress=False, log=None)
    mu, _ = model.predict(support_x, support_y, query_x, n_samples=32, generator=torch.Generator().manual_seed(seed))
    return {"mean": mu.mean(0), "history": result["history"]}


# ---------------------------------------------------------------- question 3d: bayes_head_maml.py

def _head_model(code, seed, kwargs):
    torch.manual_seed(seed)
    kwargs = {"hidden": (16, 16), "inner_steps": 3, "inner_lr": 0.02, "inner_samples": 4, "n_samples": 5, **kwargs}
    return code.bayes_head_maml.GaussianHeadMAML(**kwargs).double()


@on_stated_gaussian("bayes_head_maml")
def head_neg_elbo(code, inputs, kl_weight=1.0):
    """``support_neg_elbo(*inputs)`` of a ``GaussianHeadMAML`` with ``kl_weight``, and its gradients in mu and rho
    (the first two inputs)."""
    model = _head_model(code, 0, {"kl_weight": kl_weight})
    mu, rho = inputs[0].clone().requires_grad_(True), inputs[1].clone().requires_grad_(True)
    value = model.support_neg_elbo(mu, rho, *inputs[2:])
    grads = _grads(value, [mu, rho]) if isinstance(value, torch.Tensor) and value.requires_grad else None
    return {"value": value, "grads": grads}


@on_stated_gaussian("bayes_head_maml")
def head_neg_elbo_steps(code, inputs, kl_weight, h):
    """``support_neg_elbo(*inputs)`` of a ``GaussianHeadMAML`` with ``kl_weight`` at mu +- h and rho +- h along each
    axis: {"mu": {"plus": [...], "minus": [...]}, "rho": {...}}, 0-dim values (for derivatives by differences)."""
    model = _head_model(code, 0, {"kl_weight": kl_weight})
    out = {}
    for k, name in enumerate(("mu", "rho")):
        axes = torch.eye(inputs[k].shape[0], dtype=inputs[k].dtype)

        def moved(d, k=k):
            return model.support_neg_elbo(*inputs[:k], inputs[k] + d, *inputs[k + 1:]).detach()

        out[name] = {"plus": [moved(h * e) for e in axes], "minus": [moved(-h * e) for e in axes]}
    return out


def _meta_model(code, model_seed, first_order, kwargs, neg_elbo):
    """``_head_model`` for a meta-loss probe: its inner loop's loss is the stated ``support_neg_elbo`` (3d-0 to
    3d-2 grade yours)."""
    model = _head_model(code, model_seed, {"first_order": first_order, **kwargs})
    model.support_neg_elbo = functools.partial(neg_elbo, kl_weight=model.kl_weight)
    return model


@on_stated_gaussian("bayes_head_maml")
def head_meta_loss(code, tasks, model_seed, seed, first_order=False, *, neg_elbo, **kwargs):
    """A seeded float64 ``GaussianHeadMAML`` (``first_order`` as given): ``loss`` on ``tasks`` with
    ``torch.Generator().manual_seed(seed)`` and its meta-gradients ({name: tensor})."""
    model = _meta_model(code, model_seed, first_order, kwargs, neg_elbo)
    loss = model.loss(*tasks, generator=torch.Generator().manual_seed(seed))
    grads = None
    if isinstance(loss, torch.Tensor) and loss.requires_grad:
        names, params = zip(*model.named_parameters())
        grads = dict(zip(names, _grads(loss, list(params))))
    return {"loss": loss, "grads": grads}


@on_stated_gaussian("bayes_head_maml")
def head_meta_loss_along(code, tasks, model_seed, seed, direction, hs, first_order=False, *, neg_elbo, **kwargs):
    """The ``loss`` of ``head_meta_loss``'s model (same seeds, so the same noise even from the global RNG) with its
    parameters moved to theta + h * direction ({name: tensor}), for each h of ``hs``: 0-dim values, detached (the
    test takes the directional derivative from them)."""
    out = []
    for h in hs:
        model = _meta_model(code, model_seed, first_order, kwargs, neg_elbo)
        for name, p in model.named_parameters():
            p.detach().add_(h * direction[name])  # a detached alias: moved in place, outside autograd
        out.append(model.loss(*tasks, generator=torch.Generator().manual_seed(seed)).detach())
    return out


# ---------------------------------------------------------------- question 4: es.py

def _objective(name, A, b):
    if name == "quadratic":
        return lambda t: 0.5 * t @ A @ t + b @ t
    if name == "wavy":
        return lambda t: torch.sin(t).sum() + (t**4).sum()
    raise ValueError(name)


def es_estimate(code, objective, theta, sigma, population, seed, A=None, b=None):
    """``es_gradient`` of the objective ``objective`` ("quadratic": 1/2 t^T A t + b^T t; "wavy":
    sum sin t + t^4) at ``theta``, with ``torch.Generator().manual_seed(seed)``."""
    return code.es.es_gradient(_objective(objective, A, b), theta, sigma, population,
                               generator=torch.Generator().manual_seed(seed))
