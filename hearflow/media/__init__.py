"""The one definition of preprocessing: decoding and encoding media, frames, optical flow, audio,
augmentation, whole samples, synthetic data and box formats, shared by training, export and the engine."""
