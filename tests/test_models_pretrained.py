"""The pre-trained model registry (cs330.models.pretrained): offline resolution, clear errors, real smoke tests."""

import pytest
import torch

from cs330.models.pretrained import (MODELS, ModelNotFoundError, PretrainedSpec, load_causal_lm, load_classifier,
                                     load_encoder, output_head, resolve, transformer_blocks)


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # tests never touch the network


def test_local_folder_wins(tmp_path):
    assert resolve(str(tmp_path)).source == "path"


def test_missing_package_names_the_install_command(monkeypatch):
    fake = PretrainedSpec(hub_id="someone/model", package="cs330_no_such_package",
                          install="python -m pip install no-such-pkg==1.0")
    monkeypatch.setitem(MODELS, "fake-model", fake)
    with pytest.raises(ModelNotFoundError, match=r"pip install no-such-pkg==1\.0"):
        resolve("fake-model")


def test_unknown_name_offline_is_a_clear_error():
    with pytest.raises(ModelNotFoundError, match="not a local folder, not a registered model"):
        resolve("certainly-not-a-model-name")


def test_offline_hub_cache_still_counts(monkeypatch):
    """Offline, a model the hub cache already holds (e.g. the course's gpt2) still resolves to the hub."""
    from cs330.models import pretrained

    monkeypatch.setattr(pretrained, "_hub_cached", lambda hub_id: hub_id == "gpt2")
    assert resolve("gpt2") == pretrained.Resolved("gpt2", None, "hub")
    with pytest.raises(ModelNotFoundError):
        resolve("gpt3-not-cached")


def test_minilm_from_the_installed_package():
    assert resolve("all-minilm-l6-v2").source == "package"
    tokenizer, model = load_classifier("all-minilm-l6-v2", num_labels=3, seed=0)
    assert len(transformer_blocks(model)) == 6 and output_head(model).out_features == 3
    _, again = load_classifier("all-minilm-l6-v2", num_labels=3, seed=0)
    assert torch.equal(output_head(model).weight, output_head(again).weight), "the new head is seeded"
    # the encoder is really pre-trained: paraphrases embed closer than unrelated sentences
    tokenizer, encoder = load_encoder("all-minilm-l6-v2")
    enc = tokenizer(["A man is playing a guitar.", "Someone plays the guitar.", "The stock market fell sharply today."],
                    padding=True, return_tensors="pt")
    with torch.no_grad():
        h = encoder(**enc).last_hidden_state
    mask = enc["attention_mask"].unsqueeze(-1)
    e = torch.nn.functional.normalize((h * mask).sum(1) / mask.sum(1), dim=-1)
    assert e[0] @ e[1] > 0.6 > e[0] @ e[2], f"similarities {float(e[0] @ e[1]):.2f} vs {float(e[0] @ e[2]):.2f}"


@pytest.mark.timeout(240)
def test_smollm2_loads_offline_caches_and_answers(tmp_path, monkeypatch):
    """The GGUF model dequantises, is cached as safetensors, reloads from the cache, and knows a fact."""
    monkeypatch.setenv("CS330_CACHE", str(tmp_path))
    tokenizer, model = load_causal_lm("smollm2-135m-instruct")
    assert resolve("smollm2-135m-instruct").source == "cache", "the first load should leave a converted copy"
    assert len(transformer_blocks(model)) == 30 and sum(p.numel() for p in model.parameters()) == 134_515_008
    tokenizer2, model2 = load_causal_lm("smollm2-135m-instruct")
    ids = tokenizer("The capital of France is", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        a, b = model(ids).logits, model2(ids).logits
    assert torch.equal(a, b), "the cached conversion must give the same model"
    assert tokenizer2.decode(a[0, -1].argmax()).strip() == "Paris"
