"""Vision-encoder harness: which encoder, under which preprocessing, hands how many visual
tokens to a language model, at what latency and memory, with what embedding quality."""

__version__ = "0.1.0"
