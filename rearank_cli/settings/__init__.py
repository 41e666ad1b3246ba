"""Every setting of every command, declared once (standard library only).

`settings.base` says how a setting is declared; `settings.rerank` (rerank, merge), `settings.backends`
(the vllm, hf and openai flags), `settings.commands` (eval, report, index, retrieve, augment, doctor) and
`settings.train` hold the declarations; `settings.files` reads `--config` files and writes TOML. The CLI
generates its flags from these classes (`commands.options`), the Python API and the core take their
defaults from them, and manifests record their resolved values.
"""
