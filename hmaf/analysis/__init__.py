"""Shared helpers of the experiment, evaluation and explanation tools: the paper's
published numbers, result tables, and the Figure 3 drawing."""
