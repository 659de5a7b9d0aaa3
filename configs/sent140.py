"""Reference study model on Sentiment140: a 2-layer Mamba with d_model 64.

  python -m train.main --config=configs/sent140.py --workdir=workdirs/sent140

Every field is documented; ``configs/sent140_large.py`` and the baseline
configs start from this one and override what they change.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  """The reference configuration."""
  config = ml_collections.ConfigDict()
  # ---- Data (train.data.pipeline.get_datasets: raw files -> TFDS dataset -> tokenizer -> token cache;
  # configs/tiny.py switches to the synthetic task) ----
  # "sentiment140" (real tweets), "labelled_files" (your own CSV/TSV files: the fields below;
  # train.data.labelled_files) or "synthetic" (toy task, train.data.synthetic).
  config.dataset = "sentiment140"
  # Folder with the raw files (official zip, extracted CSVs or any 6-column CSV[.gz]);
  # None: env SENT140_DATA_DIR, else the TFDS manual-download folder.
  config.data_dir = ml_collections.FieldReference(None, field_type=str)
  # Where the prepared data goes; None: env MAMBA_JAX_DATA_CACHE, else ./data_cache.
  config.prepared_dir = ml_collections.FieldReference(None, field_type=str)
  config.download = True  # Fetch the official zip into the data folder when neither raw files nor matching prepared data are there.
  # SentencePiece vocabulary size (id 0 is padding). More than the train texts can fill, or fewer
  # than the characters and bytes they need, is a one-line error naming a size that works. Not
  # used when init_from is a classifier (its tokenizer is used).
  config.vocab_size = 32000
  config.max_length = 64  # Tokens per tweet after truncation / right padding.
  config.split_fractions = (0.98, 0.01, 0.01)  # train / validation / test shares of the 1.6M tweets.
  config.tokenizer_max_sentences = 1_000_000  # Train-split sentences sampled for SentencePiece.
  # Deterministic subsample of the train split (quick runs); None: all.
  config.max_train_examples = ml_collections.FieldReference(None, field_type=int)
  # ---- Your own labelled files (dataset "labelled_files"; read by train.data.labelled_rows, as
  # train.evaluate reads them; configs/own_data.py) ----
  config.train_file = ml_collections.FieldReference(None, field_type=str)  # CSV/TSV (plain or .gz) of training rows.
  # Rows for validation; None: a stable hash split of train_file (split_fractions, as for Sentiment140).
  config.validation_file = ml_collections.FieldReference(None, field_type=str)
  # Rows scored once at the end (eval_report.json "test"); None: from the hash split of train_file.
  config.test_file = ml_collections.FieldReference(None, field_type=str)
  # Text / label column: a header name (the first row is then the header) or a 0-based index;
  # both None: the Sentiment140 6-column CSV (polarity, id, date, query, user, text).
  config.text_column = ml_collections.FieldReference(None, field_type=str)  # Column of the texts.
  config.label_column = ml_collections.FieldReference(None, field_type=str)  # Column of the labels.
  # "auto" (0/2/4, negative/neutral/positive or 0/1, whichever the values fit: ids negative 0,
  # positive 1, neutral 2 -- neutral becomes a class when the train file has it) | "0/2/4" |
  # "names" | "0/1" | "classes" (every distinct value a class, ids in sorted order of the values).
  config.label_scheme = "auto"
  config.encoding = "auto"  # "auto" (byte order mark, else UTF-8 if the file decodes, else latin-1) | "utf-8" | "latin-1".
  config.delimiter = "auto"  # "auto" (tab for .tsv/.tab, else comma) | "comma" | "tab".
  # ---- The synthetic toy task (dataset "synthetic"; train.data.synthetic; configs/tiny.py) ----
  config.synthetic_train_size = 4096  # Train examples (max_train_examples still cuts them).
  config.synthetic_eval_size = 512  # Validation and test examples, each (manual_test: always 498).

  # ---- Model (train.loop.models.create_model) ----
  config.model_type = "mamba"  # "mamba" | "transformer" | "lstm".
  config.dtype = "float32"  # Activation dtype: "float32" or "bfloat16" (params and scan state stay float32).
  config.model = ml_collections.ConfigDict()  # Constructor fields of mamba_jax.MambaConfig.
  config.model.d_model = 64  # Residual stream width.
  config.model.n_layers = 2  # Number of Mamba blocks.
  config.model.d_state = 16  # SSM state size n per channel.
  config.model.d_conv = 4  # Causal depthwise conv width.
  config.model.expand = 2  # d_inner = expand * d_model.
  config.model.dropout = 0.2  # Dropout on embeddings, block outputs and pooled features.
  config.model.pooling = "mean"  # "mean" over real tokens or the "last" real token.
  config.model.scan_method = "auto"  # Scan method: "auto" (mamba_jax.ssm.AUTO_METHOD per backend) | "associative" | "sequential" | "pallas".
  config.model.select_delta = True  # Input-dependent delta (False: learned constant; the LTI ablation).
  config.model.select_bc = True  # Input-dependent B and C (False: learned constants; the LTI ablation).
  config.model.bidirectional = False  # True: a second mixer per block over the reversed real tokens, summed (mamba_jax.block).
  # Where the initial weights come from (train.loop.pretrained_init); None: from scratch. Either
  # - a classifier: an exported model directory (train.export, e.g. models/sent140_mamba) or a
  #   finished classifier workdir: its tokenizer is used (none is trained), all its weights are
  #   loaded; its head is kept when its class names equal this data's, else replaced (one line
  #   says so). model_type and config.model must match it (dropout and scan_method may differ); or
  # - a Hugging Face / state-spaces Mamba LM folder (config.json + model.safetensors, e.g. written by
  #   mamba_jax.save_pretrained) or a mamba_lm workdir, whose embedding, blocks and final norm
  #   initialize the classifier; the head stays fresh. config.model and vocab_size must match it.
  # Read when the train state is created (a resumed run then restores its own checkpoint over it).
  config.init_from = ml_collections.FieldReference(None, field_type=str)

  # ---- Optimization (train.loop.optimizer) ----
  config.seed = 0  # Seeds parameter init, dropout, the data order and the synthetic data.
  config.batch_size = 512  # Global training batch (split over all devices; must divide by their count).
  config.eval_batch_size = 1024  # Global evaluation batch (must divide by the device count).
  config.num_epochs = 3  # Epochs over the train split (used when num_train_steps is -1).
  config.num_train_steps = -1  # Total steps; -1: num_epochs * steps_per_epoch (see train_examples_budget).
  config.train_examples_budget = 0  # With num_train_steps -1: at most this many examples seen (0: no cap).
  config.learning_rate = 2e-3  # Peak AdamW learning rate.
  config.warmup_steps = 1000  # Linear warmup from 0 to learning_rate.
  config.end_learning_rate_factor = 0.01  # Cosine decay ends at this fraction of the peak.
  config.adam_b1 = 0.9  # AdamW beta1.
  config.adam_b2 = 0.98  # AdamW beta2.
  config.adam_eps = 1e-8  # AdamW epsilon.
  config.weight_decay = 0.05  # Decoupled weight decay on the decayed parameters (see next field).
  # Parameters whose '/'-joined path matches this regex get no weight decay:
  # A_log and D (SSM dynamics), dt_bias / B / C of the LTI ablation, every bias, every norm scale.
  config.no_decay_regex = r"(^|/)(A_log|D|dt_bias|B|C|bias|conv_bias|scale)$"
  config.grad_clip_norm = 1.0  # Clip the global gradient norm to this (0 disables).
  config.label_smoothing = 0.05  # epsilon of optax.smooth_labels on the one-hot targets.
  # Loss weight of each training row by its class (train.tasks): "none" (every row 1) or "balanced"
  # (inverse class frequency of the train split, N / (classes * N_class): a rare class counts as much
  # as a common one; combined with label smoothing).
  config.class_weighting = "none"

  # ---- Input feeding (train.loop.input_feed) ----
  config.train_data_on_device = True  # Keep the tokenized train split on the accelerator; batches gathered by index there.
  config.prefetch_batches = 2  # Host path only: batches prepared ahead by a background thread.
  # Length buckets (train.data.batching): each batch holds tweets of one bucket and is padded
  # only to its bound, so a step costs what its real tokens cost. One train and one eval
  # program is compiled per bound (here at most 8). False: every batch padded to max_length.
  # These bounds pad the train split to 1.16x its real tokens (fixed padding to 64: 3.76x).
  config.bucket_by_length = True
  config.length_bucket_bounds = (12, 16, 20, 24, 28, 32, 40)  # Below max_length; max_length is always the last.

  # ---- Loop, logging, checkpoints (train.loop.trainer) ----
  config.log_every_steps = 100  # Progress bar / metrics.jsonl / TensorBoard cadence.
  config.eval_every_steps = 2000  # Validation cadence (also at the end); feeds the best checkpoint.
  config.checkpoint_every_steps = 2000  # Save the latest state this often (and at the end).
  # The same two cadences in epochs (e.g. 0.25: four times an epoch, whatever the data's size);
  # None: the step counts above.
  config.eval_every_epochs = ml_collections.FieldReference(None, field_type=float)  # Validation cadence in epochs.
  config.checkpoint_every_epochs = ml_collections.FieldReference(None, field_type=float)  # Save cadence in epochs.
  # Validation metric that picks the checkpoint the final report scores: "accuracy" or
  # "macro_recall" (the mean of per-class recalls: for imbalanced classes).
  config.best_checkpoint_metric = "accuracy"
  config.keep_checkpoints = 3  # Latest checkpoints kept (the best-by-validation one is kept separately).
  config.async_checkpointing = True  # Write checkpoints in the background.
  config.neutral_threshold = 0.7  # manual_test three-way: confidence below this -> "neutral".
  config.ece_bins = 15  # Equal-width confidence bins of the expected calibration error.
  config.debug_nan_after_step = -1  # Test hook: >= 0 multiplies the loss by NaN from that step on; -1 off.
  # Wall-clock budget in minutes (0: none): training stops at the step where the workdir's runs have
  # spent it (resumed runs count their earlier time), then evaluates and reports as usual (train.train).
  config.budget_minutes = 0.0

  # ---- Several processes (train.runs.distributed; README "Several hosts") ----
  config.distributed = False  # Call jax.distributed.initialize() (multi-host; one process per host).
  config.coordinator_address = ""  # host:port of process 0's coordinator; "": JAX_COORDINATOR_ADDRESS, or detected (SLURM, TPU pod).
  config.num_processes = -1  # Processes in the run; -1: JAX_NUM_PROCESSES, SLURM_NTASKS, or detected.
  config.process_id = -1  # This process's index 0..num_processes-1; -1: JAX_PROCESS_ID, SLURM_PROCID, or detected.
  config.cpu_collectives = "gloo"  # CPU cross-process collectives (jax_cpu_collectives_implementation): "gloo" | "mpi".
  return config

