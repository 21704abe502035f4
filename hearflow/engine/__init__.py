"""The real-time engine: sources (camera, microphone, files, GStreamer, synthetic) feed one
inference thread whose results go to bounded sinks (overlay, video, ZeroMQ, JSONL).
"""
