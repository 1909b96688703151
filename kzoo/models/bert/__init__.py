from kzoo.models.bert.bert_backbone import BertBackbone
from kzoo.models.bert.bert_classifier import BertClassifier
from kzoo.models.bert.bert_masked_lm_head import BertMaskedLMHead
from kzoo.models.bert.bert_presets import BERT_SIZES
from kzoo.models.bert.bert_pretrainer import BertPretrainer
from kzoo.models.bert.bert_question_answerer import BertQuestionAnswerer
from kzoo.models.bert.bert_token_classifier import BertTokenClassifier
