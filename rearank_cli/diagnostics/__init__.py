"""What `rearank doctor` checks, as pure pieces: `probes` (torch, vLLM and the JVM, each in a child
process that prints one JSON line) and `checks` (ok / warn / fail verdicts with a fix, pure functions of the
probes' data, plus the model, server and disk checks). `jobs.doctor` runs them and prints the report.
"""
