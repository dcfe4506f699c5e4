-- The vector index's search list (`search_l`, 200 by default) bounds both the work of a query and
-- how many neighbours `vector_top_k` returns whatever k asks for. Measured over the bench's 100k
-- chunks: 200 took 8 ms a query and returned at most ~200 rows; 100 took 3.4 ms and returned at
-- most ~100; 40 took 2.5 ms but returned at most ~45, too few to filter to one user of many.
-- Rebuilding the index re-reads every stored vector (about 5 minutes for 100k chunks here).
DROP INDEX chunks_embedding;
CREATE INDEX chunks_embedding ON chunks(libsql_vector_idx(embedding, 'metric=cosine',
    'max_neighbors=48', 'compress_neighbors=float8', 'insert_l=40', 'search_l=100'));
