"""The embedded tiny dLLM: tokenizer, procedural corpus, training script and shipped assets."""
