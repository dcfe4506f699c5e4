-- Terms are counted by matching them (stemmed as the search stems them), not by looking the word
-- up as typed in the index's vocabulary, which holds stems: the vocabulary table has no reader.
DROP TABLE chunks_vocab;
