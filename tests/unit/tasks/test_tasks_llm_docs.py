import json

from rhlens.tasks import LLMDocumentSource, count_tokens, generate


class FakeLLM:
    def __init__(self):
        self.calls = []

    def __call__(self, prompt):
        self.calls.append(prompt)
        n = len(self.calls)
        return f"This place has a story number {n}. People there like walking. The end of part {n}."


def test_cache_by_prompt_hash(tmp_path):
    llm = FakeLLM()
    src = LLMDocumentSource(llm, tmp_path)
    a = src.document("Lisbon", 0)
    assert src.document("Lisbon", 0) == a and len(llm.calls) == 1
    src.document("Porto", 0)
    assert len(llm.calls) == 2
    files = sorted(p.name for p in tmp_path.iterdir())
    assert len(files) == 2 and all(len(f) == 64 + 5 for f in files)
    record = json.loads((tmp_path / files[0]).read_text())
    assert set(record) == {"prompt", "text"}
    # a fresh source on the same folder reads the cache without calling the model
    llm2 = FakeLLM()
    assert LLMDocumentSource(llm2, tmp_path).document("Lisbon", 0) == a and not llm2.calls


def test_generators_use_the_source(tmp_path):
    llm = FakeLLM()
    src = LLMDocumentSource(llm, tmp_path)
    exs = generate("mdqa", "realistic", n=2, context_tokens=300, seed=0, documents=src)
    assert llm.calls
    for ex in exs:
        assert "People there like walking." in ex.prompt
        assert ex.answer_texts == (ex.answer,) and ex.answer in ex.needle_texts[0]
        assert abs(count_tokens(ex.prompt) - 300) <= 15
        assert ex.meta["documents"] == "LLMDocumentSource"
    n_calls = len(llm.calls)
    again = generate("mdqa", "realistic", n=2, context_tokens=300, seed=0, documents=src)
    assert again == exs and len(llm.calls) == n_calls  # all from the cache
    niah = generate("niah", "fictional", n=1, context_tokens=200, seed=0, documents=src)[0]
    assert "People there like walking." in niah.prompt
