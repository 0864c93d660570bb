"""Data side of hmaf: preprocessing, records, vocabulary, embeddings and tf.data input."""
