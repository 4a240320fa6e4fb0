"""The performance model's formulas against hand-computed cases (Llama-3.1-8B and -70B on H100/L4 figures)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hearth.planner import perf
from hearth.planner.perf import Configs

H100 = {"flops": 989e12, "bandwidth": 3.35e12, "memory": 80e9, "link": 450e9}
LLAMA_8B = {"params": 8.03e9, "active": 8.03e9, "layers": 32, "hidden": 4096, "kv_heads": 8, "head_dim": 128}
LLAMA_70B = {"params": 70.6e9, "active": 70.6e9, "layers": 80, "hidden": 8192, "kv_heads": 8, "head_dim": 128}


def cfg(
    model=LLAMA_8B,
    gpu=H100,
    *,
    tp=1,
    bytes_per_param=2.0,
    kv_bytes=2.0,
    theta=(1.0, 1.0, 0.0, 0.0),
    kv_scale=1.0,
) -> Configs:
    return Configs.of(
        **model,
        **gpu,
        tp=tp,
        bytes_per_param=bytes_per_param,
        kv_bytes=kv_bytes,
        theta_bw=theta[0],
        theta_c=theta[1],
        theta_o=theta[2],
        theta_r=theta[3],
        theta_s=theta[4] if len(theta) > 4 else 0.0,
        theta_ar=theta[5] if len(theta) > 5 else perf.ALLREDUCE_LATENCY_S,
        theta_q=theta[6] if len(theta) > 6 else 0.0,
        kv_scale=kv_scale,
    )


def test_weights_and_kv_cache_per_token() -> None:
    c = cfg()
    assert perf.weight_bytes(c)[0] == pytest.approx(16.06e9)
    # 2 (K, V) × 32 layers × 8 KV heads × 128 dims × 2 bytes
    assert perf.kv_bytes_per_token(c)[0] == 131072
    # Tensor parallel splits the KV heads …
    assert perf.kv_bytes_per_token(cfg(tp=2))[0] == 65536
    # … until there is less than one per GPU: then each GPU keeps a replica of one head.
    assert perf.kv_bytes_per_token(cfg(tp=16))[0] == 2 * 32 * 1 * 128 * 2


def test_fp8_kv_cache_holds_twice_the_tokens_but_reads_at_16_bit_cost() -> None:
    fp8 = cfg(bytes_per_param=1.0, kv_bytes=1.0)
    # Stored: 2 × 32 layers × 8 KV heads × 128 dims × 1 byte; read: as if 2 bytes (dequantized on load).
    assert perf.kv_bytes_per_token(fp8)[0] == 65536
    assert perf.kv_read_bytes_per_token(fp8)[0] == 131072
    assert perf.kv_read_bytes_per_token(cfg())[0] == 131072  # 16-bit: stored and read alike
    # So the FP8 cache holds twice the tokens of the 16-bit one in the same free memory …
    free = 80e9 * 0.9 - 8.03e9 - perf.RUNTIME_RESERVE_BYTES
    assert perf.kv_capacity_tokens(fp8)[0] == pytest.approx(free / 65536)
    # … but a decode step at batch 64 and 1,200 tokens of context reads the FP8 weights (8.03 GB) plus
    # 64 × 1,200 × 131,072 bytes of cache: 2.40 + 3.00 ms at peak bandwidth, not 2.40 + 1.50 ms.
    mem, _, _ = perf.decode_features(fp8, np.array([64.0]), 1200.0)
    assert mem[0] == pytest.approx((8.03e9 + 64 * 1200 * 131072) / 3.35e12)
    assert 5.39e-3 < mem[0] < 5.41e-3
    # The per-sequence slope of a step is the same as 16-bit's: only the weight read shrinks.
    slope_fp8 = perf.decode_features(fp8, np.array([65.0]), 1200.0)[0] - mem
    slope_16 = (
        perf.decode_features(cfg(), np.array([65.0]), 1200.0)[0]
        - perf.decode_features(cfg(), np.array([64.0]), 1200.0)[0]
    )
    assert slope_fp8[0] == pytest.approx(slope_16[0])
    # A prefill alongside 10 running sequences reads their cache at the same 16-bit cost.
    alone = perf.prefill_time(fp8, 512, 0.0, 0.0)[0]
    loaded = perf.prefill_time(fp8, 512, 10.0, 1200.0)[0]
    assert loaded - alone == pytest.approx(10 * 1200 * 131072 / 3.35e12 + 2 * 8.03e9 * 10 / 989e12)


def test_kv_capacity_bounds_concurrency() -> None:
    c = cfg()
    free = 80e9 * 0.9 - 16.06e9 - perf.RUNTIME_RESERVE_BYTES
    assert perf.kv_capacity_tokens(c)[0] == pytest.approx(free / 131072)
    tokens = free / 131072  # ≈ 407,700
    assert perf.max_batch(c, 768)[0] == 256  # capped by max_num_seqs
    assert perf.max_batch(c, 768, max_num_seqs=10_000)[0] == math.floor(tokens / 768)
    assert perf.max_batch(c, 11776, max_num_seqs=10_000)[0] == math.floor(tokens / 11776)
    # 70B in bf16 (141 GB) does not fit one 80 GB GPU: no KV cache at all.
    assert perf.kv_capacity_tokens(cfg(LLAMA_70B))[0] == 0
    assert perf.max_batch(cfg(LLAMA_70B), 768)[0] == 0
    # Nor two at 90 % utilisation (70.6 GB each plus the runtime reserve > 72 GB); four do.
    assert perf.max_batch(cfg(LLAMA_70B, tp=2), 768)[0] == 0
    assert perf.max_batch(cfg(LLAMA_70B, tp=4), 768)[0] == 256


def test_decode_is_bandwidth_bound_at_batch_one() -> None:
    c = cfg()
    ctx = 512 + 128
    mem, comp, _ = perf.decode_features(c, np.array([1.0]), ctx)
    assert mem[0] == pytest.approx((16.06e9 + ctx * 131072) / 3.35e12)  # ≈ 4.82 ms
    assert comp[0] == pytest.approx(2 * 8.03e9 / 989e12)  # ≈ 16 µs: two orders below
    # step_time at θ = (1, 1, 0, 0): memory + compute + the prompts mixed in (1/256 of a 512-token prefill).
    step = perf.step_time(c, np.array([1.0]), 512, 256)[0]
    pf = perf.prefill_flops(c, 512)[0] / 989e12
    expected = (16.06e9 + (512 + 128) * 131072) / 3.35e12 + 2 * 8.03e9 / 989e12 + pf / 256
    assert step == pytest.approx(expected)
    assert 4.8e-3 < step < 5.0e-3


def test_prefill_is_compute_bound() -> None:
    c = cfg()
    flops = 2 * 8.03e9 * 4096 + 2 * 32 * 4096**2 * 4096
    assert perf.prefill_flops(c, 4096)[0] == pytest.approx(flops)
    t = perf.prefill_time(c, 4096)[0]
    # The weight read (4.8 ms) overlaps the matmuls (≈ 69 ms): it counts in its share, mem² / (mem + comp).
    comp, mem = flops / 989e12, 16.06e9 / 3.35e12
    assert t == pytest.approx(comp + mem * mem / (mem + comp))
    assert 0.069 < t < 0.0725
    assert flops / 989e12 > 10 * 16.06e9 / 3.35e12


def test_tensor_parallel_overhead() -> None:
    assert perf.allreduce_time(cfg(), 1.0)[0] == 0.0
    c = cfg(LLAMA_70B, tp=4)
    # Per call: log2(4) = 2 latency rounds plus the ring transfer of 64 tokens × 8,192 × 2 bytes.
    per_call = 2 * perf.ALLREDUCE_LATENCY_S + 2 * 3 / 4 * (64 * 8192 * 2) / 450e9
    assert perf.allreduce_time(c, 64.0)[0] == pytest.approx(2 * 80 * per_call)
    # TP halves the bytes each GPU reads per step, minus the all-reduces: 4 GPUs decode 70B faster than 2.
    t2 = perf.step_time(cfg(LLAMA_70B, tp=2), np.array([8.0]), 512, 256)[0]
    t4 = perf.step_time(cfg(LLAMA_70B, tp=4), np.array([8.0]), 512, 256)[0]
    assert t4 < t2
    assert t4 > t2 / 2  # but less than twice as fast


def test_theta_scales_the_bound_it_belongs_to() -> None:
    base = perf.step_time(cfg(), np.array([1.0]), 512, 256)[0]
    slow_memory = perf.step_time(cfg(theta=(2.0, 1.0, 0.0, 0.0)), np.array([1.0]), 512, 256)[0]
    assert slow_memory == pytest.approx(2 * base, rel=0.02)  # decode at batch 1 is almost all memory time
    overhead = perf.step_time(cfg(theta=(1.0, 1.0, 1e-3, 0.0)), np.array([1.0]), 512, 256)[0]
    assert overhead == pytest.approx(base + 1e-3)


def test_closed_loop_obeys_littles_law_and_mdl_queueing() -> None:
    c = cfg(theta=(1.4, 2.0, 0.5e-3, 0.02))
    lat = perf.closed_loop(c, 1024, 256, np.array([1.0, 8.0, 64.0]))
    # Little's law: concurrency = throughput × time in the system.
    assert np.allclose(lat.requests_per_s * lat.e2e_p50, [1.0, 8.0, 64.0], rtol=0.02)
    assert np.allclose(lat.output_tokens_per_s, lat.requests_per_s * 256)
    # E2E = TTFT + (output − 1) × ITL
    assert np.allclose(lat.e2e_p50, lat.ttft_p50 + 255 * lat.itl_p50)
    # More concurrency: more throughput, slower tokens, longer TTFT (queueing on prefills).
    assert np.all(np.diff(lat.output_tokens_per_s) > 0)
    assert np.all(np.diff(lat.itl_p50) > 0)
    assert np.all(np.diff(lat.ttft_p50) > 0)
    assert not lat.saturated.any()
    # At concurrency 1 the engine is idle when a request arrives (no step in flight to wait for): TTFT =
    # prefill + host overhead θ_r + M/D/1 wait, where the queue's service time is the GPU work of a prefill.
    work = perf.prefill_time(c, 1024)[0]
    rho = lat.requests_per_s[0] * work
    wait = rho * work / (2 * (1 - rho))
    assert lat.ttft_p50[0] == pytest.approx(work + 0.02 + wait, rel=1e-3)


def test_clients_beyond_the_kv_limit_wait_for_a_slot() -> None:
    c = cfg(theta=(1.4, 2.0, 0.5e-3, 0.02))
    limit = perf.max_batch(c, 1024 + 256, max_num_seqs=64)[0]
    assert limit == 64
    lat = perf.closed_loop(c, 1024, 256, np.array([64.0, 128.0, 192.0]), max_num_seqs=64)
    assert lat.batch.tolist() == [64.0, 64.0, 64.0]
    assert lat.saturated.tolist() == [False, True, True]
    # Same throughput, but the clients beyond the batch wait for a slot: 64 more clients, 64 more requests
    # to wait for (Little's law on the line). Admitted one by one, they form no cohort.
    assert lat.requests_per_s[2] == pytest.approx(lat.requests_per_s[1], rel=1e-6)
    assert lat.ttft_p50[2] - lat.ttft_p50[1] == pytest.approx(64 / lat.requests_per_s[1], rel=1e-3)
    assert lat.ttft_p50[1] > lat.ttft_p50[0]


def test_open_loop_below_and_above_capacity() -> None:
    c = cfg(theta=(1.4, 2.0, 0.5e-3, 0.02))
    lat = perf.open_loop(c, 512, 256, np.array([1.0, 5.0, 1000.0]))
    assert lat.saturated.tolist() == [False, False, True]
    # Little's law for the running sequences: batch = rate × time in service.
    in_service = lat.e2e_p50[:2] + lat.itl_p50[:2] / 2
    assert np.allclose(lat.batch[:2], np.array([1.0, 5.0]) * in_service, rtol=0.05)


def test_fp8_halves_weight_bytes_and_doubles_peak_compute() -> None:
    bf16 = cfg()
    fp8 = cfg(bytes_per_param=1.0, kv_bytes=1.0, gpu={**H100, "flops": 1979e12})
    assert perf.kv_bytes_per_token(fp8)[0] == 65536  # FP8 KV cache: half the bytes, twice the sequences
    assert perf.weight_bytes(fp8)[0] == pytest.approx(perf.weight_bytes(bf16)[0] / 2)
    assert (
        perf.step_time(fp8, np.array([1.0]), 512, 256)[0]
        < 0.55 * perf.step_time(bf16, np.array([1.0]), 512, 256)[0]
    )


# -- the engine terms (issue 14): each against a hand-computed case -----------------------------------


def test_per_sequence_host_overhead_adds_per_running_sequence() -> None:
    base = perf.step_time(cfg(), np.array([8.0]), 512, 256)[0]
    with_s = perf.step_time(cfg(theta=(1.0, 1.0, 0.0, 0.0, 50e-6)), np.array([8.0]), 512, 256)[0]
    assert with_s - base == pytest.approx(8 * 50e-6)  # θ_s × B: 0.4 ms at batch 8


def test_prefill_chunks_share_the_token_budget_with_decode() -> None:
    # 20,000 prompt tokens, 8,192 per step, 192 running decodes take their tokens first: 8,000 left per step.
    assert perf.prefill_chunks(20_000, 192, 8192) == 3
    assert perf.prefill_chunks(8_000, 192, 8192) == 1
    assert perf.prefill_chunks(8_001, 192, 8192) == 2
    # A budget crowded by decodes still gives prefill an eighth of it (1,024 tokens): 5,000 → 5 steps.
    assert perf.prefill_chunks(5_000, 8_000, 8192) == 5


def test_loaded_prefill_carries_the_running_batch() -> None:
    c = cfg(theta=(1.0, 1.0, 1e-3, 0.0, 20e-6))
    alone = perf.prefill_time(c, 1024)[0]
    comp = perf.prefill_flops(c, 1024)[0] / 989e12
    mem = 16.06e9 / 3.35e12
    assert alone == pytest.approx(comp + mem * mem / (mem + comp) + 1e-3)  # one step: its overhead θ_o
    # Alongside 31 running sequences of 1,152 tokens: the step also reads their KV cache, runs their decode
    # FLOPs and pays their host overhead (one chunk: 1,024 + 31 tokens fit the 8,192 budget).
    loaded = perf.prefill_time(c, 1024, 31, 1152)[0]
    extra = 31 * 1152 * 131072 / 3.35e12 + 2 * 8.03e9 * 31 / 989e12 + 31 * 20e-6
    assert loaded - alone == pytest.approx(extra)  # ≈ 1.40 + 0.50 + 0.62 ms
    # A 20,000-token prompt beside 192 sequences runs in 3 chunks: three steps' fixed costs.
    three = perf.prefill_time(c, 20_000, 192, 100)[0]
    comp20 = perf.prefill_flops(c, 20_000)[0] / 989e12
    per_step = mem * mem / (mem + comp20 / 3) + 192 * 100 * 131072 / 3.35e12 + 2 * 8.03e9 * 192 / 989e12
    assert three == pytest.approx(comp20 + 3 * (per_step + 1e-3 + 192 * 20e-6))


def test_frontend_wait_per_stream_and_idle_engine_in_ttft() -> None:
    # θ_q = 2 ms per other stream: at concurrency 16 a newcomer waits 15 × 2 ms before its prefill.
    c0 = cfg(theta=(1.0, 1.0, 0.0, 0.01, 0.0, 0.0, 0.0))
    cq = cfg(theta=(1.0, 1.0, 0.0, 0.01, 0.0, 0.0, 2e-3))
    a = perf.closed_loop(c0, 512, 256, np.array([1.0, 16.0]))
    b = perf.closed_loop(cq, 512, 256, np.array([1.0, 16.0]))
    assert b.ttft_p50[0] == pytest.approx(a.ttft_p50[0])  # alone: nobody else to serve
    # (The queueing on prefills shifts a little with the slower rate, hence the tolerance.)
    assert b.ttft_p50[1] - a.ttft_p50[1] == pytest.approx(15 * 2e-3, rel=0.02)
    # Half a step in flight is waited for only when other sequences run: (B − 1)/B of arrivals.
    assert perf.in_flight(1.0) == 0.0 and perf.in_flight(4.0) == pytest.approx(0.75)


def test_allreduce_latency_per_call_is_the_measured_tp_cost() -> None:
    two = cfg(LLAMA_70B, tp=2, bytes_per_param=1.0, kv_bytes=1.0, theta=(1.0, 1.0, 0.0, 0.0, 0.0, 25e-6))
    # 2 all-reduces × 80 layers, each 25 µs plus a ring transfer of B × 8,192 × 2 bytes at 450 GB/s (half of
    # it crosses the link with 2 GPUs): at batch 1, 160 × (25 µs + 16,384 / 450e9 s) ≈ 4.01 ms.
    assert perf.allreduce_time(two, 1.0)[0] == pytest.approx(160 * (25e-6 + 16384 / 450e9))
    assert perf.allreduce_time(cfg(), 1.0)[0] == 0.0  # no TP, no all-reduce


def test_kv_capacity_by_engine_accounting_and_fitted_scale() -> None:
    # Llama-3.3-70B FP8 on 2× H100: 35.3 GB of weights per GPU, 81,920 bytes of FP8 KV per token per GPU.
    args = {"tp": 2, "bytes_per_param": 1.0, "kv_bytes": 1.0}
    vllm = Configs.of(**{**vars_of(cfg(LLAMA_70B, **args))})
    trt = Configs.of(**{**vars_of(cfg(LLAMA_70B, **args)), "kv_of_free": 1.0})
    left = 80e9 - 35.3e9 - perf.RUNTIME_RESERVE_BYTES
    # vLLM: 0.9 of all memory minus the weights; TensorRT-LLM: 0.9 of what the weights leave.
    assert perf.kv_capacity_tokens(vllm)[0] == pytest.approx((left - 0.1 * 80e9) / 81920)
    assert perf.kv_capacity_tokens(trt)[0] == pytest.approx(0.9 * left / 81920)
    # 34.2 GB → 417,000 tokens → 75 sequences of 5,500; 38.0 GB → 463,600 tokens → 84 (NIM held ~87).
    assert perf.max_batch(vllm, 5500)[0] == 75 and perf.max_batch(trt, 5500)[0] == 84
    scaled = Configs.of(**{**vars_of(cfg(LLAMA_70B, **args)), "kv_scale": 1.1})
    assert perf.kv_capacity_tokens(scaled)[0] == pytest.approx(1.1 * perf.kv_capacity_tokens(vllm)[0])


def vars_of(c: Configs) -> dict[str, float]:
    return {f: float(getattr(c, f)[0]) for f in c.__dataclass_fields__}


def test_allreduce_latency_grows_with_log2_of_the_gpus() -> None:
    # A small all-reduce takes log2(tp) rounds: 160 calls × (1, 2, 3) rounds for TP 2, 4, 8.
    for tp, rounds in ((2, 1), (4, 2), (8, 3)):
        c = cfg(LLAMA_70B, tp=tp, theta=(1.0, 1.0, 0.0, 0.0, 0.0, 20e-6))
        assert perf.allreduce_hops(c)[0] == 160 * rounds
        assert perf.allreduce_time(c, 0.0)[0] == pytest.approx(160 * rounds * 20e-6)  # 3.2, 6.4, 9.6 ms
    assert perf.allreduce_hops(cfg(LLAMA_70B, tp=1))[0] == 0.0


def test_fp8_adds_a_fixed_time_per_layer_per_step() -> None:
    fp8 = {"bytes_per_param": 1.0, "kv_bytes": 1.0, "gpu": {**H100, "flops": 1979e12}}
    base = perf.step_time(cfg(**fp8), np.array([4.0]), 512, 256)[0]
    c = Configs.of(
        **{f: getattr(cfg(**fp8), f) for f in cfg().__dataclass_fields__ if f != "theta_f8"}, theta_f8=20e-6
    )
    # 32 layers × 20 µs = 0.64 ms on every step, whatever the batch …
    assert perf.step_time(c, np.array([4.0]), 512, 256)[0] - base == pytest.approx(32 * 20e-6)
    assert perf.step_fixed(c)[0] == pytest.approx(32 * 20e-6)
    # … and on each of a prefill's steps (a 20,000-token prompt beside 192 sequences: 3 chunks).
    extra = perf.prefill_time(c, 20_000, 192, 2048)[0] - perf.prefill_time(cfg(**fp8), 20_000, 192, 2048)[0]
    assert extra == pytest.approx(3 * 32 * 20e-6)


def test_closed_loop_cohort_waits_for_the_prompts_ahead_of_it_and_in_its_step() -> None:
    # Alike clients send together. The scheduler puts ⌊8,192 ÷ prompt⌋ of them in each step; every prompt of a
    # step waits for the whole step, and the steps run first come first served, so the mean newcomer waits for
    # (size + per step)/2 prompts, its own included.
    assert perf.cohort_ahead(1.0, 2000) == 0.0  # alone: nobody ahead
    assert perf.cohort_ahead(3.0, 2000) == 2.0  # 3 × 2,000 tokens fit one step: each waits for the other 2
    assert perf.cohort_ahead(10.0, 2000) == 6.0  # 4 a step, 3 steps: (10 + 4)/2 − 1
    assert perf.cohort_ahead(5.0, 7000) == 2.0  # one a step: (5 + 1)/2 − 1, half the others
    assert perf.cohort_ahead(25.0, 200) == 24.0  # 40 fit a step: all 24 others
    assert perf.cohort_ahead(10.0, 2000, budget=2048) == 4.5  # a 2,048-token budget: one a step
    # The wait: θ_sync × the prompts ahead × one prompt's peak-rate prefill compute. 8B, 2,000-token prompt on
    # an H100: 2 × 8.03e9 × 2000 + 2 × 32 × 2000² × 4096 FLOPs ÷ 989e12 = 33.5 ms; at θ_sync = 1 and a cohort
    # of 10: 6 × 33.5 = 201 ms.
    comp = (2 * 8.03e9 * 2000 + 2 * 32 * 2000**2 * 4096) / 989e12
    c = Configs.of(
        **{f: getattr(cfg(), f) for f in cfg().__dataclass_fields__ if f != "theta_sync"}, theta_sync=1.0
    )
    assert perf.cohort_wait(c, 2000, 10.0)[0] == pytest.approx(6 * comp)
    assert 0.200 < perf.cohort_wait(c, 2000, 10.0)[0] < 0.202
    assert perf.cohort_wait(c, 2000, 1.0)[0] == 0.0
    # The cohort is the running batch, less one per client waiting for a slot beyond it.
    assert perf.cohort_size(64.0, 64.0) == 64.0
    assert perf.cohort_size(64.0, 100.0) == 28.0
    assert perf.cohort_size(64.0, 200.0) == 1.0
    # In the closed loop it adds to TTFT (on top of the M/D/1 wait); the open loop has none.
    without = perf.closed_loop(cfg(theta=(1.4, 2.0, 0.5e-3, 0.02)), 2000, 200, np.array([10.0]))
    with_cohort = perf.closed_loop(
        Configs.of(
            **{
                f: getattr(cfg(theta=(1.4, 2.0, 0.5e-3, 0.02)), f)
                for f in cfg().__dataclass_fields__
                if f != "theta_sync"
            },
            theta_sync=1.0,
        ),
        2000,
        200,
        np.array([10.0]),
    )
    assert with_cohort.ttft_p50[0] - without.ttft_p50[0] > 0.9 * 6 * comp
