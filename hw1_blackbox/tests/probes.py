"""Probes: the code the autograder runs beside your data_generator.py and model.py, in the sandboxed
process that runs your code, when a check needs more than one call (a seeded generator, a seeded
model, loading weights, a backward pass, a training run).

Each probe takes ``code`` first (your homework's modules: ``code.data_generator``, ``code.model``,
``code.train``) and returns data (tensors, numbers, lists, dicts) or a model. The same probe run on
the reference solution gives what a hidden check compares with. Nothing here is secret: it ships
with the tests.
"""

import torch


def sample(code, images, n_way, k_shot, batch_size, seed):
    """``data_generator.sample_batch`` on ``images`` with a ``torch.Generator`` seeded with ``seed``."""
    return code.data_generator.sample_batch(images, n_way, k_shot, batch_size, torch.Generator().manual_seed(seed))


def make(code, N=3, K=2, model="lstm", seed=0):
    """``model.MANN(N, K + 1, model=model)``, its initial weights drawn after ``torch.manual_seed(seed)``."""
    torch.manual_seed(seed)
    return code.model.MANN(N, K + 1, model=model)


def outputs(code, x, label_sets, N=3, K=2, model="lstm", seed=0):
    """One seeded model (``make``) run without gradients on ``x`` with each of ``label_sets``: a list of logits."""
    net = make(code, N, K, model, seed)
    with torch.no_grad():
        return [net(x, y) for y in label_sets]


def run_with_state(code, net, state, x, y):
    """Load ``state`` into ``net`` (all parameters and buffers, strictly), switch it to eval mode and
    return its logits on ``(x, y)`` without gradients."""
    try:
        net.load_state_dict(state)
    except RuntimeError as e:
        raise RuntimeError(
            f"your MANN's parameters (names and shapes) do not match the ones the handout asks for:\n{e}"
        ) from None
    net.eval()
    with torch.no_grad():
        return net(x, y)


def sequence_with_state(code, net, state, sequence):
    """Load ``state`` into ``net`` (strictly), switch it to eval mode and return ``net.sequence_model(sequence)``
    without gradients."""
    net.load_state_dict(state)
    net.eval()
    with torch.no_grad():
        return net.sequence_model(sequence)


def loss_and_grad(code, preds, labels):
    """``model.loss_function(preds, labels)`` and, after ``loss.backward()``, the gradient with respect to ``preds``."""
    preds = preds.detach().clone().requires_grad_(True)
    loss = code.model.loss_function(preds, labels)
    loss.backward()
    return {"loss": loss.detach(), "grad": preds.grad}


def short_run(code, images, labels, steps=400, seed=0):
    """2-way 1-shot training on synthetic glyphs with ``train.train`` (your sampler and model). After every
    evaluation (each 100 steps) the model, in eval mode and without gradients, predicts the query row of
    the given held-out episodes, ``images`` (T, 2, 2, 784) and ``labels`` (T, 2, 2, 2) whose query row is
    all zeros (the grader keeps the query labels and computes the accuracy). Returns the training losses
    and those query logits, one (T, 2, 2) tensor per evaluation."""
    torch.set_num_threads(1)
    from cs330.data import make_glyphs

    glyphs = make_glyphs(n_alphabets=12, chars_per_alphabet=20, n_drawers=20, seed=0, jitter=1.0).images
    query_logits = []

    def predict_held_out(net, step):
        net.eval()
        with torch.no_grad():
            query_logits.append(net(images, labels)[:, -1])
        net.train()
        return {}

    result = code.train.train(n_way=2, k_shot=1, meta_batch_size=32, steps=steps, model="lstm", seed=seed, lr=3e-3,
                              eval_every=100, train_images=glyphs[:160], test_images=glyphs[160:], progress=False,
                              log=None, evaluator=predict_held_out)
    return {"train_loss": [row["train_loss"] for row in result["history"]], "query_logits": query_logits}
