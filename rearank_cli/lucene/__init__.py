"""Lucene through Anserini (pyserini 1.6 / Anserini 1.7.1) over jnius: the JVM, the indexer, the BM25
searcher, the stored-document store and pyserini's prebuilt names.

`java` starts the one JVM of a process; `indexer` builds an index from validated JSONL corpora;
`searcher` is Anserini's BM25 with its score adjustment; `docstore` reads stored raw documents back;
`prebuilt` resolves pyserini index and topic-set names; `threads` runs Java calls on several threads.
Nothing here is imported by `rearank --help`: callers import these modules lazily.
"""
