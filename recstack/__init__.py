"""recstack: GPU-accelerated deep-learning recommender, logs in and personalised ranked lists out."""

__version__ = "0.1.0"
