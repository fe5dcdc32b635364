"""seqtune: fine-tune BERT-family encoders on your own labelled data."""

from seqtune.api import FineTunedModel, load, train
from seqtune.errors import SeqtuneError

__all__ = ["FineTunedModel", "SeqtuneError", "load", "train"]
__version__ = "0.1.0"
