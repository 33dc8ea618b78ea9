"""Question 3: in-context prompts and greedy decoding with a KV cache (icl.py).

Prompts are built beside your code from plain fields (``probes.babi_prompt``); decoding runs there on
a tiny random causal LM (``tiny.fake_lm``; the last test a Hugging Face Llama, ``tiny.tiny_llama``), and
the expected tokens come from the same seeded model built here, decoded by the plain uncached greedy loop.
"""

import torch

import probes
from cs330.grading import expect_tensor, graded
from probes import causal_lm


def story(facts, question, answer):
    return {"story": list(facts), "question": question, "answer": answer}


STORY_1 = story(["Mary moved to the bathroom.", "John went to the hallway."], "Where is Mary?", "bathroom")
STORY_2 = story(["Daniel went back to the garden."], "Where is Daniel?", "garden")
# the query's answer is a word found nowhere else, so that it can be looked for in the prompt
STORY_3 = story(["Sandra journeyed to the kitchen.", "Mary went to the office.", "Sandra went upstairs."],
                "Where is Sandra?", "attic")
DOC_1 = {"document": "The council   approved the plan on Monday.\nWork starts in May.", "summary": "Plan approved.",
         "id": "1"}
DOC_2 = {"document": "Rain fell all day in the city.", "summary": "A wet day.", "id": "2"}
DOC_3 = {"document": "Scientists found a new species of frog in the rainforest.", "summary": "New frog found.",
         "id": "3"}


def babi(student, support, query, style):
    out = student.probe(probes.babi_prompt, support, query, style)
    assert isinstance(out, str), f"babi_prompt must return a str, got {type(out).__name__}"
    return out


def xsum(student, support, query, style, max_words=200):
    out = student.probe(probes.xsum_prompt, support, query, style, max_words)
    assert isinstance(out, str), f"xsum_prompt must return a str, got {type(out).__name__}"
    return out


def same(got, want, what):
    assert got == want, f"{what}:\n--- got ---\n{got!r}\n--- expected ---\n{want!r}"


@graded("3a-0-basic", points=1, timeout=30)
def test_babi_instruction_format(student):
    """babi_prompt, format "instruction": the exact 1-shot string."""
    same(babi(student, [STORY_1], STORY_2, "instruction"),
         "Read each story and answer the question with a single word.\n\n"
         "Story: Mary moved to the bathroom. John went to the hallway.\nQuestion: Where is Mary?\nAnswer: bathroom\n\n"
         "Story: Daniel went back to the garden.\nQuestion: Where is Daniel?\nAnswer:", "format 'instruction'")


@graded("3a-1-basic", points=0.5, timeout=30)
def test_babi_none_format(student):
    """babi_prompt, format "none": the exact 1-shot string."""
    same(babi(student, [STORY_1], STORY_2, "none"),
         "Mary moved to the bathroom. John went to the hallway. Where is Mary? bathroom\n\n"
         "Daniel went back to the garden. Where is Daniel?", "format 'none'")


@graded("3a-2-basic", points=0.5, timeout=30)
def test_babi_custom_format(student):
    """babi_prompt, format "custom": the exact 1-shot string (facts numbered from 1)."""
    same(babi(student, [STORY_1], STORY_2, "custom"),
         "1. Mary moved to the bathroom.\n2. John went to the hallway.\nQ: Where is Mary?\nA: bathroom\n\n"
         "1. Daniel went back to the garden.\nQ: Where is Daniel?\nA:", "format 'custom'")


@graded("3a-3-basic", points=1, timeout=30)
def test_babi_query_answer_not_in_prompt(student):
    """The query's answer never appears in its prompt (in any format, k = 0, 1, 2): the model must not be told it."""
    for style in ("none", "instruction", "custom"):
        for support in ([], [STORY_1], [STORY_2, STORY_1]):
            prompt = babi(student, support, STORY_3, style)
            assert "attic" not in prompt, (
                f"format {style!r}, k = {len(support)}: the query's answer is in the prompt (label leakage)"
            )


@graded("3a-4-hidden", points=1, timeout=30)
def test_babi_zero_and_two_shot(student, reference):
    """k = 0 (the query alone, after the instruction if any) and k = 2 (examples in the given order,
    then the query), every format."""
    got = {(style, k): babi(student, [STORY_2, STORY_1][:k], STORY_3, style)
           for style in ("none", "instruction", "custom") for k in (0, 2)}
    # BEGIN HIDDEN
    for (style, k), prompt in got.items():
        want = reference.probe(probes.babi_prompt, [STORY_2, STORY_1][:k], STORY_3, style)
        same(prompt, want, f"format {style!r}, k = {k}")
    # END HIDDEN


@graded("3b-0-basic", points=1, timeout=30)
def test_xsum_instruction_format(student):
    """xsum_prompt, format "instruction": the exact 1-shot string (documents shorter than max_words)."""
    same(xsum(student, [DOC_2], DOC_3, "instruction"),
         "Summarize each article in one sentence.\n\n"
         "Article: Rain fell all day in the city.\nSummary: A wet day.\n\n"
         "Article: Scientists found a new species of frog in the rainforest.\nSummary:", "format 'instruction'")


@graded("3b-1-basic", points=1, timeout=30)
def test_xsum_none_and_custom_formats(student):
    """xsum_prompt, formats "none" and "custom": the exact 1-shot strings."""
    same(xsum(student, [DOC_2], DOC_3, "none"),
         "Rain fell all day in the city.\nA wet day.\n\nScientists found a new species of frog in the rainforest.\n",
         "format 'none'")
    same(xsum(student, [DOC_2], DOC_3, "custom"),
         "Rain fell all day in the city.\nTL;DR: A wet day.\n\n"
         "Scientists found a new species of frog in the rainforest.\nTL;DR:", "format 'custom'")


@graded("3b-2-basic", points=1, timeout=30)
def test_xsum_documents_cut_to_max_words(student):
    """Every document (examples and query) is cut to its first max_words words, joined by single spaces."""
    for style in ("none", "instruction", "custom"):
        prompt = xsum(student, [DOC_1], DOC_3, style, max_words=5)
        for kept, dropped, which in (("The council approved the plan", "Monday", "example"),
                                     ("Scientists found a new species", "frog", "query")):
            assert kept in prompt, (
                f"format {style!r}: the {which}'s first 5 words {kept!r} (single spaces) are not in the prompt"
            )
            assert dropped not in prompt, f"format {style!r}: the {which}'s document is not cut to max_words = 5 words"


@graded("3b-3-hidden", points=1, timeout=30)
def test_xsum_two_shot_and_leakage(student, reference):
    """Two examples in the given order, default max_words, every format; the query's summary never in the prompt."""
    got = {style: xsum(student, [DOC_2, DOC_1], DOC_3, style) for style in ("none", "instruction", "custom")}
    # BEGIN HIDDEN
    for style, prompt in got.items():
        assert "New frog found." not in prompt, (
            f"format {style!r}: the query's summary is in the prompt (label leakage)"
        )
        same(prompt, reference.probe(probes.xsum_prompt, [DOC_2, DOC_1], DOC_3, style), f"format {style!r}")
    # END HIDDEN


# ----------------------------------------------------------------------------------------------
# 3c: greedy decoding

PROMPT = torch.tensor([[5, 9, 2, 33, 7]])


@torch.no_grad()
def greedy(prompt, n, layers=2, seed=0, stop=(), kind="fake"):
    """The plain uncached greedy continuation of ``prompt`` by causal_lm(kind, layers, seed):
    argmax of the last position, n times."""
    model, seq, out = causal_lm(kind, layers, seed), prompt, []
    for _ in range(n):
        token = int(model(seq).logits[0, -1].argmax())
        out.append(token)
        if token in stop:
            break
        seq = torch.cat([seq, torch.tensor([[token]])], 1)
    return out


def decoded(student, n, use_cache=True, stop=(), prompt=PROMPT, layers=2, seed=0, kind="fake"):
    got = student.probe(probes.decode, prompt, n, list(stop), use_cache, layers, seed, kind)
    tokens = expect_tensor(got["tokens"], "greedy_decode")
    assert tokens.dim() == 2 and tokens.shape[0] == 1, (
        f"greedy_decode must return (1, n) new tokens, got shape {tuple(tokens.shape)}"
    )
    assert tokens.dtype == torch.int64, f"greedy_decode must return int64 token ids, got {tokens.dtype}"
    return tokens[0].tolist(), got["fed"]


@graded("3c-0-basic", points=1, timeout=30)
def test_greedy_decode_with_cache(student):
    """With the cache: (1, 8) int64 new tokens (not the prompt), each the argmax of the model's next-token logits."""
    tokens, _ = decoded(student, 8, use_cache=True)
    assert tokens == greedy(PROMPT, 8), f"greedy tokens {greedy(PROMPT, 8)}, got {tokens} (return only the new tokens)"


@graded("3c-1-basic", points=1, timeout=30)
def test_greedy_decode_without_cache(student):
    """Without the cache: the same greedy tokens."""
    tokens, _ = decoded(student, 8, use_cache=False)
    assert tokens == greedy(PROMPT, 8), f"greedy tokens {greedy(PROMPT, 8)}, got {tokens} without the cache"


@graded("3c-2-basic", points=1, timeout=30)
def test_greedy_decode_stops(student):
    """Decoding stops right after producing a stop token, which is kept in the output."""
    free = greedy(PROMPT, 8)
    stop = free[2]
    tokens, _ = decoded(student, 8, stop=[stop])
    want = free[:free.index(stop) + 1]
    assert tokens == want, f"with stop token {stop}: expected {want}, got {tokens}"


@graded("3c-3-basic", points=1, timeout=30)
def test_greedy_decode_uses_the_cache(student):
    """With the cache the prompt is run once and every later call feeds one token; without it, each call
    feeds the whole sequence so far."""
    _, fed = decoded(student, 6, use_cache=True)
    assert fed and fed[0] == PROMPT.shape[1] and all(n == 1 for n in fed[1:]), (
        f"tokens fed per model call with the cache: {fed}; expected [5, 1, 1, ...]: "
        "feed only the newest token and the cache"
    )
    _, fed = decoded(student, 6, use_cache=False)
    assert fed[:6] == [5 + i for i in range(6)], (
        f"tokens fed per model call without the cache: {fed}; expected [5, 6, 7, ...]"
    )


@graded("3c-4-hidden", points=1, timeout=30)
def test_greedy_decode_longer(student):
    """On a Hugging Face Llama (tiny, random; its own cache object), another prompt, 12 tokens with the cache:
    the greedy tokens."""
    prompt = torch.tensor([[1, 2, 3]])
    tokens, _ = decoded(student, 12, prompt=prompt, layers=3, seed=4, kind="llama")
    # BEGIN HIDDEN
    want = greedy(prompt, 12, layers=3, seed=4, kind="llama")
    assert tokens == want, f"greedy tokens {want}, got {tokens}"
    # END HIDDEN
