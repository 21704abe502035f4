"""Training and measuring models: dataset preparation into a clip cache, the training loop,
the evaluator with the field's protocol, and confidence calibration.
"""
