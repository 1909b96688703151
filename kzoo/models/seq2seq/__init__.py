from kzoo.models.seq2seq.seq2seq_backbone import SEQ2SEQ_SIZES, Seq2SeqBackbone
from kzoo.models.seq2seq.seq2seq_translator import Seq2SeqTranslator
from kzoo.models.seq2seq.lstm_seq2seq import LSTMSeq2Seq
