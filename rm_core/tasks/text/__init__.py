"""Text track: the real benchmarks (MBPP, MATH, ARC-Challenge), prompts, the character tokenizer and mini tasks."""
