"""default_stop_ids: EOS and every newline token, on real tokenizers of each family built here,
on stories260K (realdata), and with a generation config's EOS list."""

import json

import pytest

from rhlens.models import word_level_tokenizer
from rhlens.stopping import default_stop_ids, generation_eos_ids, newline_ids
from tests.references.tokenizers import byte_fallback_tokenizer, byte_level_tokenizer, stories260k


def names(tok, ids):
    return sorted(tok.convert_ids_to_tokens(sorted(ids)))


def test_byte_fallback_sentencepiece_stops_at_the_newline_byte():
    tok = byte_fallback_tokenizer()
    assert tok.convert_ids_to_tokens(tok("\n", add_special_tokens=False)["input_ids"]) == ["▁", "<0x0A>"]
    assert names(tok, default_stop_ids(tok)) == ["</s>", "<0x0A>"]
    assert tok.convert_tokens_to_ids("<0x0D>") not in default_stop_ids(tok)  # a lone carriage return is no newline


def test_byte_level_bpe_stops_at_every_newline_token():
    tok = byte_level_tokenizer()
    found = names(tok, newline_ids(tok))
    assert {"Ċ", "ĊĊ", "ĠĊĊ"} <= set(found)
    assert all(tok.decode([tok.convert_tokens_to_ids(t)]).strip() == "" for t in found)
    assert "<|endoftext|>" in names(tok, default_stop_ids(tok))
    text_and_newline = [t for t in tok.get_vocab() if "Ċ" in t and t.strip("ĠĊ")]
    assert not set(text_and_newline) & set(found)  # '.Ċ' style tokens are not stops


def test_word_level_newline():
    tok = word_level_tokenizer(["a b", "\n"])
    assert names(tok, default_stop_ids(tok)) == ["\n", "<eos>"]
    assert names(word_level_tokenizer(["a b"]), default_stop_ids(word_level_tokenizer(["a b"]))) == ["<eos>"]


def test_a_letter_that_looks_like_a_byte_level_newline_is_not_one():
    """'Ċ' is a Maltese letter; in a SentencePiece vocabulary it is text, not GPT-2's newline."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"<unk>": 0, "</s>": 1, "Ċ": 2, "a": 3}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<unk>", eos_token="</s>")
    assert default_stop_ids(tok) == {1}


@pytest.mark.parametrize("config", [{"eos_token_id": [2, 7, 9]}, {"eos_token_id": 7}, None])
def test_generation_config_eos_list(config, tmp_path):
    tok = byte_fallback_tokenizer()
    extra = generation_eos_ids(config)
    assert default_stop_ids(tok, config) == default_stop_ids(tok) | extra
    if config is not None:
        (tmp_path / "generation_config.json").write_text(json.dumps(config))
        assert generation_eos_ids(tmp_path) == generation_eos_ids(tmp_path / "generation_config.json") == extra


def test_generation_config_object_and_errors(tmp_path):
    from transformers import GenerationConfig

    assert generation_eos_ids(GenerationConfig(eos_token_id=[128001, 128009])) == {128001, 128009}
    with pytest.raises(ValueError, match="eos_token_id must be an int or a list"):
        generation_eos_ids({"eos_token_id": "</s>"})
    with pytest.raises(FileNotFoundError, match="generation_config.json"):
        generation_eos_ids(tmp_path)


@pytest.mark.realdata
def test_stories260k(realdata):
    path, tok = stories260k(realdata)
    assert names(tok, default_stop_ids(tok, path)) == ["</s>", "<0x0A>"]
