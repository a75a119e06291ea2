"""The RNN language-model family: LSTM, GRU and Elman RNN as transformers models."""

from .configuration_rnn import RNNConfig
from .modeling_rnn import RNNForCausalLM, RNNForSequenceClassification, RNNModel, RNNPreTrainedModel

__all__ = ["RNNConfig", "RNNForCausalLM", "RNNForSequenceClassification", "RNNModel", "RNNPreTrainedModel"]
