"""recstack: GPU-accelerated deep-learning recommender, logs in and personalised ranked lists out.

One installed package; its stages keep the top-level folders of the design (``preprocessing/`` is
``recstack.preprocessing``, and so on), and data flows one way, in this order.
"""

__version__ = "0.1.0"
STAGES = ("preprocessing", "training", "ensemble", "client")  # recstack.<stage>, upstream first
