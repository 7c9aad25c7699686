"""The machine-learning core: backbones, PEFT methods, prompts, training, evaluation, metrics, energy.

Nothing here knows about datasets on disk, run configurations or Flower: every function takes a
model, a tokenizer and records (anything with the :class:`fedlab.data.Record` attributes).
"""
