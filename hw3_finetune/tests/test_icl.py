"""Question 3: in-context prompts and greedy decoding with a KV cache (icl.py)."""

import torch

from cs330.data.text import BabiExample, SummaryExample
from cs330.grading import graded, reference_module, student_module
from tiny import tiny_llama

STORY_1 = BabiExample(["Mary moved to the bathroom.", "John went to the hallway."], "Where is Mary?", "bathroom", [0])
STORY_2 = BabiExample(["Daniel went back to the garden."], "Where is Daniel?", "garden", [0])
DOC_1 = SummaryExample("The council   approved the plan on Monday.\nWork starts in May.", "Plan approved.", "1")
DOC_2 = SummaryExample("Rain fell all day in the city.", "A wet day.", "2")


@graded("3a-0-basic", points=2)
def test_babi_prompts_exact():
    """babi_prompt: the exact 1-shot prompt string in each of the three formats."""
    icl = student_module("icl")
    expected = {
        "none": "Mary moved to the bathroom. John went to the hallway. Where is Mary? bathroom\n\n"
                "Daniel went back to the garden. Where is Daniel?",
        "instruction": "Read each story and answer the question with a single word.\n\n"
                       "Story: Mary moved to the bathroom. John went to the hallway.\nQuestion: Where is Mary?\nAnswer: bathroom\n\n"
                       "Story: Daniel went back to the garden.\nQuestion: Where is Daniel?\nAnswer:",
        "custom": "1. Mary moved to the bathroom.\n2. John went to the hallway.\nQ: Where is Mary?\nA: bathroom\n\n"
                  "1. Daniel went back to the garden.\nQ: Where is Daniel?\nA:",
    }
    for style, want in expected.items():
        got = icl.babi_prompt([STORY_1], STORY_2, style)
        assert got == want, f"format {style!r}:\n--- got ---\n{got!r}\n--- expected ---\n{want!r}"
    assert icl.babi_prompt([], STORY_2, "none") == "Daniel went back to the garden. Where is Daniel?", "k = 0: the query alone"


@graded("3a-1-hidden", points=1)
def test_babi_prompts_match_reference():
    """babi_prompt with two examples, every format, matches the reference."""
    icl = student_module("icl")
    # BEGIN HIDDEN
    ref = reference_module("icl")
    for style in ("none", "instruction", "custom"):
        assert icl.babi_prompt([STORY_2, STORY_1], STORY_1, style) == ref.babi_prompt([STORY_2, STORY_1], STORY_1, style), \
            f"format {style!r} differs from the reference"
    # END HIDDEN


@graded("3b-0-basic", points=1)
def test_xsum_prompts_exact():
    """xsum_prompt: exact 1-shot strings, with documents cut to max_words words (whitespace normalised)."""
    icl = student_module("icl")
    expected = {
        "none": "The council approved the plan\nPlan approved.\n\nRain fell all day in\n",
        "instruction": "Summarize each article in one sentence.\n\n"
                       "Article: The council approved the plan\nSummary: Plan approved.\n\n"
                       "Article: Rain fell all day in\nSummary:",
        "custom": "The council approved the plan\nTL;DR: Plan approved.\n\nRain fell all day in\nTL;DR:",
    }
    for style, want in expected.items():
        got = icl.xsum_prompt([DOC_1], DOC_2, style, max_words=5)
        assert got == want, f"format {style!r}:\n--- got ---\n{got!r}\n--- expected ---\n{want!r}"


@graded("3b-1-hidden", points=1)
def test_xsum_prompts_match_reference():
    """xsum_prompt with two examples and the default max_words matches the reference."""
    icl = student_module("icl")
    # BEGIN HIDDEN
    ref = reference_module("icl")
    for style in ("none", "instruction", "custom"):
        assert icl.xsum_prompt([DOC_2, DOC_1], DOC_1, style) == ref.xsum_prompt([DOC_2, DOC_1], DOC_1, style), \
            f"format {style!r} differs from the reference"
    # END HIDDEN


@graded("3c-0-basic", points=2)
def test_greedy_decode_cache_equals_no_cache():
    """greedy_decode on a tiny random Llama: (1, n) output, the same tokens with and without the KV cache,
    each token the argmax of the full model on the sequence so far."""
    icl = student_module("icl")
    model = tiny_llama()
    prompt = torch.tensor([[5, 9, 2, 33, 7]])
    cached = icl.greedy_decode(model, prompt, max_new_tokens=8, use_cache=True)
    plain = icl.greedy_decode(model, prompt, max_new_tokens=8, use_cache=False)
    assert cached.shape == (1, 8), f"expected (1, 8) new tokens, got {tuple(cached.shape)}"
    assert cached.tolist() == plain.tolist(), f"with cache {cached.tolist()} but without {plain.tolist()}"
    seq = prompt
    with torch.no_grad():
        for token in cached[0].tolist():
            assert token == int(model(seq).logits[0, -1].argmax()), "a token is not the argmax of the model's next-token logits"
            seq = torch.cat([seq, torch.tensor([[token]])], 1)


@graded("3c-1-basic", points=1)
def test_greedy_decode_stops():
    """greedy_decode stops right after producing a stop token (kept in the output)."""
    icl = student_module("icl")
    model = tiny_llama()
    prompt = torch.tensor([[5, 9, 2, 33, 7]])
    free = icl.greedy_decode(model, prompt, max_new_tokens=8)[0].tolist()
    stop = free[2]
    first = free.index(stop)
    out = icl.greedy_decode(model, prompt, max_new_tokens=8, stop_ids={stop})[0].tolist()
    assert out == free[:first + 1], f"with stop token {stop}: expected {free[:first + 1]}, got {out}"


@graded("3c-2-hidden", points=1)
def test_greedy_decode_matches_reference():
    """greedy_decode on another tiny model and prompt matches the reference."""
    model = tiny_llama(layers=3, seed=4)
    prompt = torch.tensor([[1, 2, 3]])
    out = student_module("icl").greedy_decode(model, prompt, max_new_tokens=12)
    # BEGIN HIDDEN
    assert out.tolist() == reference_module("icl").greedy_decode(model, prompt, max_new_tokens=12).tolist()
    # END HIDDEN
