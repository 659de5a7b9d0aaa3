"""The letters that name array axes in this project's docstrings and comments, each with one meaning.

A shape is written as a tuple of these letters: tokens (b, l) int32 -> logits (b, l, v) float32. A
module says which letters it uses in one line, ``Axes (mamba_jax.notation): b, l, d, n.``, instead of
explaining them again (tests/test_notation.py holds every such line to ``AXES``). Lower case: axes of
a model's arrays; capitals: counts of a data set. Inside the scan kernels (:mod:`mamba_jax.scan`), which
cut the sequence into chunks and hold neither classes nor a delta projection, ``SCAN_AXES`` replaces the
meaning of c and r and adds q and bd.
"""

AXES = {
    "b": "batch: the examples of one step (the global batch, over every device and process)",
    "l": "length: tokens of a sequence, or the padded length of a batch (a length bucket's bound); "
         "for generation, the longest prompt",
    "t": "new tokens of generation",
    "m": "model width, d_model (the LSTM's embedding width)",
    "d": "channels, d_inner = expand * d_model; the feature axis a pooling reduces",
    "n": "state size per channel, d_state",
    "r": "rank of Mamba-1's delta projection, dt_rank",
    "k": "conv kernel width, d_conv",
    "h": "heads (Mamba-2's SSD; the Transformer's attention)",
    "p": "head dimension (Mamba-2: d = h * p)",
    "g": "groups of Mamba-2 heads that share B and C (h / g heads each)",
    "f": "the Transformer's feed-forward width, d_ff",
    "u": "units of an LSTM layer",
    "v": "vocabulary, padded to a multiple (MambaConfig.padded_vocab_size)",
    "c": "classes: a classifier's logits",
    "s": "candidates drawn by the language model's sampled softmax",
    "e": "random features per head of the Performer's FAVOR+ attention (num_features)",
    "N": "examples: the rows of a split, or of a file",
    "M": "rows of the Sentiment140 manual test",
    "U": "distinct normalized texts",
    "L": "max_length: the tokens every example of the token cache holds",
}

SCAN_AXES = {
    "q": "chunk length: tokens per chunk",
    "c": "chunks, ceil(l / q)",
    "r": "heads per group of Mamba-2's SSD, h / g",
    "bd": "a block of channels that one Pallas program scans (block_d)",
}
