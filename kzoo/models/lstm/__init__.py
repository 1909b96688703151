from kzoo.models.lstm.lstm_language_model import LSTMLanguageModel
