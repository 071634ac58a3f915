"""PyTorch models: the SASRec-family sequential ranker and the two-tower retrieval model."""
