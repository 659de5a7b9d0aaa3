"""SentencePiece BPE tokenizer: special ids, byte fallback round trips, padding and truncation."""

import numpy as np
import pytest

from train.data import normalization, tokenizer as tokenizer_lib

WORDS = "i love hate my new phone today so much work is boring the weather nice sad happy lol".split()


@pytest.fixture(scope="module")
def tok():
  rng = np.random.default_rng(0)
  sentences = [" ".join(rng.choice(WORDS, size=rng.integers(3, 12))) for _ in range(600)]
  sentences += ["<user> look at this <url>", "<user> <user> thanks!", "so happy :) <url>"] * 20
  return tokenizer_lib.train_tokenizer(sentences, 400, max_sentences=500, max_length=12)


def test_special_ids(tok):
  assert tok.pad_id == 0 and tok.id_to_piece(0) == "<pad>" and tok.id_to_piece(1) == "<unk>"
  assert 300 <= tok.vocab_size <= 400
  row = tok.encode(["@bob see http://x.co/y"])[0]
  pieces = [tok.id_to_piece(i) for i in row if i]
  assert "<user>" in pieces and "<url>" in pieces  # User-defined symbols are single pieces.


@pytest.mark.parametrize("raw", [
    "I LOVE my new phone \U0001F60D\U0001F60D",
    "weather so sad \u2639 caf\u00e9 na\u00efve \u4f60\u597d",
    "@someone lol http://t.co/x \U0001F1EB\U0001F1F7 \u2764\ufe0f",
])
def test_round_trip_with_emoji_and_unseen_characters(tok, raw):
  long_tok = tokenizer_lib.SentencePieceTokenizer(tok.model_proto, max_length=64)  # Untruncated.
  ids = long_tok.encode([raw])[0]
  assert ids.dtype == np.uint16
  assert 1 not in ids.tolist()  # Byte fallback: nothing is unknown.
  assert long_tok.decode(ids) == normalization.normalize(raw)


def test_padding_and_truncation(tok):
  texts = ["lol", " ".join(["boring"] * 40)]
  tokens, lengths = tok.encode_normalized(texts)
  assert tokens.shape == (2, 12)
  n = lengths[0]
  assert n < 12 and np.all(tokens[0, :n] != 0) and np.all(tokens[0, n:] == 0)
  assert lengths[1] > 12 and np.all(tokens[1] != 0)  # Truncated: the head is kept.
  np.testing.assert_array_equal(tokens, tok.encode(texts))


def test_unflatten_matches_padding():
  rows = [[5, 6, 7], [], [8, 9, 10, 11, 12], [13]]
  lengths = np.asarray([len(r) for r in rows])
  out = tokenizer_lib.pad_ragged(rows, lengths, 4)
  np.testing.assert_array_equal(out, [[5, 6, 7, 0], [0, 0, 0, 0], [8, 9, 10, 11], [13, 0, 0, 0]])


def test_save_and_load(tok, tmp_path):
  path = str(tmp_path / "sp.model")
  tok.save(path)
  loaded = tokenizer_lib.load_tokenizer(path, max_length=12)
  texts = ["i love my phone \U0001F600", "<user> hi"]
  np.testing.assert_array_equal(loaded.encode(texts), tok.encode(texts))
  with pytest.raises(FileNotFoundError, match="prepare_data"):
    tokenizer_lib.load_tokenizer(str(tmp_path / "missing.model"))


WORD_BY_WORD_TEXTS = [
    "", "   ", "I LOVE my new phone \U0001F60D\U0001F60D", "@bob: see http://x.co/y www.z.org #tag ####",
    "weather so sad \u2639 caf\u00e9 na\u00efve \u4f60\u597d\u4e16\u754c", "a\u3000b\u00a0c\td\ne", "soooooooo happy!!!!!!",
    "don\u00c3\u00a2\u00c2\u0080\u00c2\u0099t &amp; &lt;3", "x" * 300, "lol " * 30, "@a@b <user><url> 12345 3.14",
]


def test_word_by_word_encoding_equals_sentencepiece(tok, monkeypatch):
  rng = np.random.default_rng(5)
  texts = WORD_BY_WORD_TEXTS + [" ".join(rng.choice(WORDS + ["\U0001F600", "<url>", "zzq"], size=rng.integers(1, 20)))
                                for _ in range(200)]
  expected = tok.encode_normalized(normalization.normalize_many(texts))
  for _ in range(2):  # Cold, then every word cached.
    tokens, lengths = tok.encode_with_lengths(texts)
    np.testing.assert_array_equal(tokens, expected[0])
    np.testing.assert_array_equal(lengths, expected[1])
  monkeypatch.setattr(tokenizer_lib, "MAX_CACHED_WORDS", 10)  # A full cache starts over: same ids.
  for start in range(0, len(texts), 7):
    tokens, lengths = tok.encode_with_lengths(texts[start:start + 7])
    np.testing.assert_array_equal(tokens, expected[0][start:start + 7])
    np.testing.assert_array_equal(lengths, expected[1][start:start + 7])
  assert tok.encode_with_lengths([])[0].shape == (0, 12)
