"""Loading a checkpoint or an export folder and running it: the inference backends
(torch, onnxruntime, TensorRT), reading export manifests, and the TensorRT engine runtime."""
