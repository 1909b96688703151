from kzoo.models.bert.bert_backbone import BertBackbone
