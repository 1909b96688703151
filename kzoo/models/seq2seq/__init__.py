from kzoo.models.seq2seq.lstm_seq2seq_backbone import LSTMSeq2SeqBackbone
from kzoo.models.seq2seq.seq2seq_backbone import SEQ2SEQ_SIZES, Seq2SeqBackbone
from kzoo.models.seq2seq.seq2seq_lm import Seq2SeqLM
