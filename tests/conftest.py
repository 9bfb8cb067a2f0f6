import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

# Tiny models gain nothing from intra-op threads, and the 2-core CI box is shared with the
# subprocesses some tests start: one thread keeps the suite fast and its timings stable.
torch.set_num_threads(1)
