"""The real-time engine and the inference backends it (and the evaluator) run models with."""
