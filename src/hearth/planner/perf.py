"""The analytic performance model of LLM serving (vLLM-style continuous batching), as pure numpy functions.

Every function takes scalars or numpy arrays (broadcasting), so the capacity search evaluates thousands of
configurations in one call. Times are seconds, sizes bytes, rates per second.

The model, per replica of `tp` GPUs (tensor parallel):
- weights: params × bytes per parameter of the quantization, split over the tp GPUs;
- KV cache: 2 (K and V) × layers × KV heads × head dim × bytes per token (bf16; FP8 with fp8 weights), KV
  heads split over the GPUs (replicated when tp exceeds them); what the GPUs have left after the weights and a
  fixed runtime reserve, times `gpu_memory_utilization`, holds the cache, and bounds how many sequences of
  (prompt + output) tokens can run at once; reading it costs 16-bit bytes even when it stores FP8 (the
  attention kernels dequantize as they load: measured, FP8 does not shrink the per-sequence cost);
- a decode step of batch B is bound by memory bandwidth (read the weights once plus every running sequence's
  cache) plus its matmul FLOPs: t_dec = θ_bw·bytes/BW + θ_c·2·N_active·B/FLOPs + θ_o + all-reduce time;
- a prefill of P tokens is bound by compute: θ_c·(2·N_active·P + causal attention FLOPs)/FLOPs plus one
  weight read;
- the engine, not only the GPU: every step (iteration of the scheduler) carries the running sequences' decode
  tokens plus chunks of new prompts, at most `max_num_batched_tokens` tokens in all (chunked prefill: vLLM's
  --max-num-batched-tokens, TensorRT-LLM's max_num_tokens; decode tokens are scheduled first). In steady state
  B/O new requests start per step, so each step also carries (B/O)·P prompt tokens of compute:
  ITL = t_dec + (B/O)·t_prefill_compute; each step also costs the host a fixed θ_o (scheduling, launching)
  plus θ_s per running sequence (sampling, detokenising, streaming);
- a new prompt's prefill runs in ⌈P ÷ (budget − B)⌉ steps, each of which also carries the B running
  sequences' decode (weight read, their KV cache, their host overhead): TTFT grows with the running batch;
- the API server serves every stream: a new request waits θ_q per other running stream before its prefill
  is scheduled (measured: TTFT grows with concurrency long before the GPU is busy, most on small models);
- tensor parallelism costs two all-reduces of the activations per layer per step, each log2(tp) rounds of
  θ_ar (fitted: the measured cost of TP, not the nominal split) plus a ring transfer over the interconnect;
- FP8 costs θ_f8 per layer per step on top (quantizing activations, rescaling outputs around each matmul);
- queueing: TTFT waits for the step in flight (half a step on average, when other sequences run) and for
  the prefills ahead of it (M/D/1 on the prefill work: W = ρs/(2(1−ρ))); in a closed loop, for the cohort it
  arrived with (θ_sync × the prompts ahead of it or in its step, `cohort_ahead`, × one prompt's peak-rate
  prefill compute; calibration ties θ_sync to θ_c); clients beyond the batch
  limit (max_num_seqs, or what the KV cache holds) wait for a running request to finish: whole request times
  (Little's law on the line).
θ = (θ_bw, θ_c, θ_o, θ_r, θ_s, θ_ar, θ_q, θ_f8) are the inverse efficiencies and overheads, fitted on
benchmark rows (`hearth.planner.fitting`; θ_bw and θ_c separately for FP8 and 16-bit, so FP8's speed-up is
the measured one); `kv_scale` scales the KV capacity to what engines were measured to hold. The defaults are
typical values.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

# Bytes per weight, which peak FLOPs apply (weight-only int4 computes in bf16), bytes per KV-cache element.
# "fp8" is the Hopper/Ada production setting: FP8 weights and activations and an FP8 KV cache (vLLM
# `--quantization fp8 --kv-cache-dtype fp8`; NVIDIA's ModelOpt FP8 checkpoints quantize the KV cache too).
QUANTIZATIONS: dict[str, tuple[float, str, float]] = {
    "bf16": (2.0, "bf16", 2.0),
    "fp16": (2.0, "bf16", 2.0),
    "fp8": (1.0, "fp8", 1.0),
    "int8": (1.0, "fp8", 2.0),
    "int4-awq": (0.5625, "bf16", 2.0),  # 4-bit weights plus one fp16 scale and zero per group of 128
}
# vLLM's --quantization argument for each (None: the checkpoint's dtype, no flag).
VLLM_QUANTIZATION = {"bf16": None, "fp16": None, "fp8": "fp8", "int8": None, "int4-awq": "awq_marlin"}

RUNTIME_RESERVE_BYTES = 2.5e9  # CUDA context, activations, CUDA graphs per GPU (vLLM reports ~1.5-3 GB)
ALLREDUCE_LATENCY_S = 10e-6  # per all-reduce call (NCCL small-message latency over NVLink; PCIe is higher)
DEFAULT_SEQ_OVERHEAD_S = 20e-6  # θ_s: host time per running sequence per step (sampling, detokenising)
DEFAULT_FRONTEND_S = 1e-3  # θ_q: a new request's wait in the API server per other stream it is serving
# Tokens one scheduler step may carry (vLLM's --max-num-batched-tokens default for the OpenAI server on
# data-centre GPUs, TensorRT-LLM's max_num_tokens default): longer prompts are prefilled in chunks.
DEFAULT_MAX_BATCHED_TOKENS = 8192
# Bytes per KV element that attention's reads cost at least: 16-bit, whatever the cache stores (see
# `kv_read_bytes_per_token`).
KV_READ_BYTES = 2.0


@dataclass(frozen=True)
class Configs:
    """Struct of arrays: one entry per candidate configuration (model × quantization × GPU × tp)."""

    params: np.ndarray  # parameters (count, not billions)
    active: np.ndarray  # parameters active per token (MoE: fewer)
    layers: np.ndarray
    hidden: np.ndarray
    kv_heads: np.ndarray
    head_dim: np.ndarray
    bytes_per_param: np.ndarray
    kv_bytes: np.ndarray  # bytes per KV-cache element
    flops: np.ndarray  # peak FLOP/s per GPU for the quantization's compute type
    bandwidth: np.ndarray  # bytes/s per GPU
    memory: np.ndarray  # bytes per GPU
    link: np.ndarray  # interconnect bytes/s per GPU
    tp: np.ndarray
    theta_bw: np.ndarray
    theta_c: np.ndarray
    theta_o: np.ndarray
    theta_r: np.ndarray
    theta_s: np.ndarray  # host seconds per running sequence per step
    theta_ar: np.ndarray  # seconds per all-reduce call (latency; the transfer is computed)
    theta_q: np.ndarray  # front-end seconds a new request waits per other running sequence (streams served)
    # Seconds per layer per step that FP8 kernels add (quantizing activations, scaling): 0 for 16-bit.
    theta_f8: np.ndarray
    # The closed loop's cohort wait per prompt ahead of a newcomer, in units of one prompt's peak-rate prefill
    # compute: θ_c (calibration ties them: those prompts run at the compute efficiency); 0 means no cohort.
    theta_sync: np.ndarray
    kv_scale: np.ndarray  # KV capacity measured ÷ computed (fitted on rows at the batch limit)
    # 1 where the engine gives the KV cache a fraction of the memory left after the weights (TensorRT-LLM's
    # kv_cache_free_gpu_memory_fraction), 0 where it is a fraction of all memory (vLLM's
    # gpu_memory_utilization).
    kv_of_free: np.ndarray

    @classmethod
    def of(cls, **values: object) -> Configs:
        values.setdefault("theta_s", DEFAULT_SEQ_OVERHEAD_S)
        values.setdefault("theta_ar", ALLREDUCE_LATENCY_S)
        values.setdefault("theta_q", DEFAULT_FRONTEND_S)
        values.setdefault("theta_f8", 0.0)
        values.setdefault("theta_sync", 0.0)
        values.setdefault("kv_scale", 1.0)
        values.setdefault("kv_of_free", 0.0)
        arrays = {k: np.atleast_1d(np.asarray(v, dtype=float)) for k, v in values.items()}
        size = max(a.size for a in arrays.values())
        return cls(**{k: np.broadcast_to(a, (size,)).copy() for k, a in arrays.items()})

    def take(self, index: np.ndarray) -> Configs:
        return Configs(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def __len__(self) -> int:
        return int(self.params.size)


def weight_bytes(c: Configs) -> np.ndarray:
    """Total bytes of the weights."""
    return c.params * c.bytes_per_param


def kv_bytes_per_token(c: Configs) -> np.ndarray:
    """KV-cache bytes one token occupies on each GPU of the replica (what bounds the batch)."""
    heads_per_gpu = np.maximum(1.0, c.kv_heads / c.tp)
    return 2.0 * c.layers * heads_per_gpu * c.head_dim * c.kv_bytes


def kv_read_bytes_per_token(c: Configs) -> np.ndarray:
    """Bytes' worth of time attention spends per cached token per step, on each GPU of the replica.

    An FP8 cache halves what a token occupies but not what reading it costs: the attention kernels
    dequantize every element to 16-bit as they load it. Measured: in the NIM genai-perf sweep the inter-token
    latency of Llama-3-8B on one H100 grows by 0.113 ms per running sequence (1,200 tokens of context) in FP8
    and by 0.108 ms in 16-bit, where a halved read would give about half; FP8 only saves the weight read."""
    heads_per_gpu = np.maximum(1.0, c.kv_heads / c.tp)
    return 2.0 * c.layers * heads_per_gpu * c.head_dim * np.maximum(c.kv_bytes, KV_READ_BYTES)


def kv_capacity_tokens(c: Configs, gpu_memory_utilization: float = 0.9) -> np.ndarray:
    """Tokens of KV cache the replica holds (0 when the weights do not fit)."""
    left = c.memory - weight_bytes(c) / c.tp - RUNTIME_RESERVE_BYTES
    free = np.where(
        c.kv_of_free > 0, gpu_memory_utilization * left, left - (1 - gpu_memory_utilization) * c.memory
    )
    return np.maximum(0.0, free) / kv_bytes_per_token(c) * c.kv_scale


def max_batch(
    c: Configs, seq_tokens: np.ndarray | float, max_num_seqs: float = 256, gpu_memory_utilization: float = 0.9
) -> np.ndarray:
    """Sequences of `seq_tokens` (prompt + output) running at once: bound by the KV cache and max_num_seqs."""
    return np.minimum(max_num_seqs, np.floor(kv_capacity_tokens(c, gpu_memory_utilization) / seq_tokens))


def step_fixed(c: Configs) -> np.ndarray:
    """Seconds every step costs whatever it carries: the host's θ_o plus, for FP8, θ_f8 per layer (the
    activations are quantized and the results rescaled around every FP8 matmul, a kernel launch each)."""
    return c.theta_o + c.theta_f8 * c.layers


def allreduce_calls(c: Configs) -> np.ndarray:
    """All-reduce calls per forward pass: two per layer (attention and MLP outputs); none without TP."""
    return np.where(c.tp > 1, 2.0 * c.layers, 0.0)


def allreduce_transfer(c: Configs, tokens: np.ndarray | float) -> np.ndarray:
    """Peak-rate seconds of the ring transfers of one forward pass over `tokens` tokens."""
    size = tokens * c.hidden * 2.0
    return allreduce_calls(c) * 2.0 * (c.tp - 1) / c.tp * size / c.link


def allreduce_hops(c: Configs) -> np.ndarray:
    """Latency units of one forward pass's all-reduces: calls × log2(tp). A small all-reduce (NCCL's
    low-latency tree / recursive doubling) takes log2(tp) rounds, so θ_ar is the latency of one round."""
    return allreduce_calls(c) * np.log2(np.maximum(c.tp, 1.0))


def allreduce_time(c: Configs, tokens: np.ndarray | float) -> np.ndarray:
    """Two all-reduces of the activations per layer: θ_ar per round (log2(tp) rounds a call) plus the ring
    transfer; zero without TP."""
    return allreduce_hops(c) * c.theta_ar + allreduce_transfer(c, tokens)


def prefill_flops(c: Configs, prompt: np.ndarray | float) -> np.ndarray:
    """Matmul FLOPs (2 per active parameter per token) plus causal attention (QK and AV, half the square)."""
    attention = 2.0 * c.layers * np.square(prompt) * c.hidden
    return 2.0 * c.active * prompt + attention


def decode_features(c: Configs, batch: np.ndarray, context: np.ndarray | float) -> tuple[np.ndarray, ...]:
    """Peak-rate seconds of one decode step: (memory, compute, steps=1)."""
    mem = (weight_bytes(c) / c.tp + batch * context * kv_read_bytes_per_token(c)) / c.bandwidth
    comp = 2.0 * c.active * batch / (c.tp * c.flops)
    return mem, comp, np.ones_like(mem)


def prefill_features(
    c: Configs, prompt: np.ndarray | float, chunks: np.ndarray | float = 1.0
) -> tuple[np.ndarray, ...]:
    """Peak-rate seconds of one request's prefill: (memory per chunk, compute).

    A chunk's weight read overlaps its matmuls: the read counts in the share it is of the chunk's work,
    mem²/(mem + compute per chunk): all of it for a few tokens (memory-bound), almost none for thousands."""
    mem = weight_bytes(c) / c.tp / c.bandwidth
    comp = prefill_flops(c, prompt) / (c.tp * c.flops)
    return mem * mem / (mem + comp / chunks), comp


def step_time(
    c: Configs, batch: np.ndarray, prompt: np.ndarray | float, output: np.ndarray | float
) -> np.ndarray:
    """Mean inter-token latency at batch B in steady state: a decode step, the prompts mixed into it, and the
    host's per-step and per-sequence overhead."""
    context = prompt + output / 2.0
    mem, comp, one = decode_features(c, batch, context)
    _, pf_comp = prefill_features(c, prompt)
    arrivals_per_step = batch / np.maximum(output, 1.0)
    return (
        c.theta_bw * mem
        + c.theta_c * (comp + arrivals_per_step * pf_comp)
        + step_fixed(c) * one
        + c.theta_s * batch
        + allreduce_time(c, batch + arrivals_per_step * prompt)
    )


def prefill_chunks(
    prompt: np.ndarray | float, running: np.ndarray | float, budget: np.ndarray | float
) -> np.ndarray:
    """Steps a prompt's prefill takes: the running sequences' decode tokens take the step's token budget
    first, the prompt gets the rest (at least an eighth of it: the scheduler never starves prefill)."""
    room = np.maximum(np.asarray(budget, dtype=float) - running, np.asarray(budget, dtype=float) / 8.0)
    return np.maximum(1.0, np.ceil(np.asarray(prompt, dtype=float) / room))


def prefill_time(
    c: Configs,
    prompt: np.ndarray | float,
    running: np.ndarray | float = 0.0,
    context: np.ndarray | float = 0.0,
    budget: np.ndarray | float = DEFAULT_MAX_BATCHED_TOKENS,
) -> np.ndarray:
    """Seconds from a prompt's first chunk to its last, alongside `running` sequences of `context` tokens.

    Each of its steps reads the weights, runs the running sequences' decode (their KV cache, their FLOPs,
    their host overhead) and the step's fixed overhead; the prompt's own compute is spread over the chunks.
    Alone (running = 0) and within the budget, this is the prompt's compute plus the part of one weight read
    that its matmuls do not hide."""
    chunks = prefill_chunks(prompt, running, budget)
    pf_mem, pf_comp = prefill_features(c, prompt, chunks)
    kv_mem = running * context * kv_read_bytes_per_token(c) / c.bandwidth
    dec_comp = 2.0 * c.active * running / (c.tp * c.flops)
    per_step = c.theta_bw * (pf_mem + kv_mem) + c.theta_c * dec_comp + step_fixed(c) + c.theta_s * running
    comm = chunks * allreduce_hops(c) * c.theta_ar + allreduce_transfer(c, prompt + chunks * running)
    return chunks * per_step + c.theta_c * pf_comp + comm


@dataclass
class Latency:
    """Predicted steady-state figures (arrays), seconds and per second."""

    ttft_p50: np.ndarray
    ttft_p95: np.ndarray
    itl_p50: np.ndarray
    itl_p95: np.ndarray
    e2e_p50: np.ndarray
    e2e_p95: np.ndarray
    requests_per_s: np.ndarray
    output_tokens_per_s: np.ndarray
    batch: np.ndarray  # sequences running at once
    saturated: np.ndarray  # bool: the offered load exceeds what the configuration serves


@dataclass(frozen=True)
class Tails:
    """Ratios from median to p95, fitted on rows that report both (see calibrate.fit_tails)."""

    ttft: float = 1.4  # TTFT p95 / p50
    itl_base: float = 0.15  # ITL p95 / p50 − 1 at no prefill interference …
    itl_slope: float = 2.0  # … plus this times the share of steps that carry a new prompt
    e2e: float = 1.04  # E2E p95 / p50 of the decode part


def closed_loop(
    c: Configs,
    prompt: np.ndarray | float,
    output: np.ndarray | float,
    concurrency: np.ndarray | float,
    *,
    max_num_seqs: float | np.ndarray = 256,
    gpu_memory_utilization: float | np.ndarray = 0.9,
    max_num_batched_tokens: float | np.ndarray = DEFAULT_MAX_BATCHED_TOKENS,
    tails: Tails = Tails(),
    iterations: int = 6,
) -> Latency:
    """Figures with `concurrency` clients each sending its next request when the last one ends."""
    prompt = np.asarray(prompt, dtype=float)
    output = np.asarray(output, dtype=float)
    concurrency = np.asarray(concurrency, dtype=float)
    limit = max_batch(c, prompt + output, max_num_seqs, gpu_memory_utilization)
    batch = np.maximum(np.minimum(concurrency, limit), 0.0)
    running = np.maximum(batch, 1.0)
    itl = step_time(c, running, prompt, output)
    work = prefill_time(c, prompt)  # the GPU work a prefill adds: what queued prompts wait for
    service = _loaded_prefill(c, prompt, output, running, max_num_batched_tokens) + c.theta_r
    in_service = service + in_flight(running) * itl / 2.0 + (output - 1.0) * itl
    rate = batch / in_service
    wait = np.zeros_like(in_service)
    # Clients beyond the batch limit are admitted one by one as slots free up, not as a cohort: the cohort
    # shrinks by one for each client waiting in the line (none left at twice the limit).
    cohort = cohort_wait(c, prompt, cohort_size(batch, concurrency), max_num_batched_tokens)
    for _ in range(iterations):
        rho = np.minimum(rate * work, 0.95)
        wait = rho * work / (2.0 * (1.0 - rho)) + cohort
        in_service = service + in_flight(running) * itl / 2.0 + wait + (output - 1.0) * itl
        rate = batch / in_service
    # Clients beyond the batch limit queue for a slot: Little's law on the waiting line.
    slot_wait = np.maximum(concurrency - batch, 0.0) / np.maximum(rate, 1e-12)
    return _figures(
        c,
        prompt,
        output,
        batch,
        itl,
        service,
        wait,
        slot_wait,
        rate,
        tails,
        saturated=(limit < 1) | (concurrency > limit),
    )


def cohort_size(batch: np.ndarray | float, concurrency: np.ndarray | float) -> np.ndarray:
    """Requests of a closed loop that send together: the running batch, less one for each client waiting in
    the line beyond it (those are admitted one by one as slots free up; none are left at twice the limit)."""
    batch = np.asarray(batch, dtype=float)
    return np.clip(2.0 * batch - np.asarray(concurrency, dtype=float), 1.0, np.maximum(batch, 1.0))


def cohort_ahead(
    size: np.ndarray | float,
    prompt: np.ndarray | float,
    budget: np.ndarray | float = DEFAULT_MAX_BATCHED_TOKENS,
) -> np.ndarray:
    """Other members' prompts a newcomer of a cohort of `size` waits for, on average.

    The scheduler fills each step with up to k = ⌊budget ÷ prompt⌋ of the cohort's prompts (at least one, at
    most all): every prompt of a step gets its first token when the step ends, so it waits for the others
    of its step, and the steps run first come first served. Over the ⌈size ÷ k⌉ steps the mean newcomer waits
    for (size + k)/2 prompts, its own included: size − 1 others when the cohort fits one step (a short
    prompt), about half the cohort when each step holds one (a long prompt)."""
    size = np.maximum(np.asarray(size, dtype=float), 1.0)
    per_step = np.minimum(
        size, np.maximum(1.0, np.floor(np.asarray(budget, dtype=float) / np.asarray(prompt)))
    )
    return (size + per_step) / 2.0 - 1.0


def cohort_wait(
    c: Configs,
    prompt: np.ndarray | float,
    size: np.ndarray | float,
    budget: np.ndarray | float = DEFAULT_MAX_BATCHED_TOKENS,
) -> np.ndarray:
    """Closed loop: clients whose requests are alike (a benchmark's fixed prompt and output lengths) finish
    together and send together, so a new prompt arrives with the other size − 1 and waits for the prefills
    scheduled before it or beside it (`cohort_ahead`): θ_sync per prompt ahead, in units of one prompt's
    peak-rate compute (the cohort's prompts share their steps' weight reads). At the compute efficiency
    θ_sync = θ_c. An open loop (random arrivals) has no cohort: M/D/1 applies."""
    return c.theta_sync * cohort_ahead(size, prompt, budget) * prefill_features(c, prompt)[1]


def in_flight(running: np.ndarray | float) -> np.ndarray:
    """Share of arrivals that find a step in flight and wait half of it on average: none when the request
    runs alone (closed loop at concurrency 1: the engine is idle when it arrives), (B − 1)/B otherwise."""
    running = np.maximum(np.asarray(running, dtype=float), 1.0)
    return (running - 1.0) / running


def _loaded_prefill(
    c: Configs, prompt: np.ndarray, output: np.ndarray, running: np.ndarray, budget: float | np.ndarray
) -> np.ndarray:
    """A newcomer's time to its first token but the host's per-request overhead θ_r: its prefill alongside the
    other running − 1 sequences (mid-way through their outputs), and the API server's time for their streams
    before it gets to the new request (θ_q per stream: tokenising, detokenising, sending)."""
    others = running - 1.0
    return prefill_time(c, prompt, others, prompt + output / 2.0, budget) + c.theta_q * others


def open_loop(
    c: Configs,
    prompt: np.ndarray | float,
    output: np.ndarray | float,
    rate: np.ndarray | float,
    *,
    max_num_seqs: float | np.ndarray = 256,
    gpu_memory_utilization: float | np.ndarray = 0.9,
    max_num_batched_tokens: float | np.ndarray = DEFAULT_MAX_BATCHED_TOKENS,
    tails: Tails = Tails(),
    iterations: int = 30,
) -> Latency:
    """Figures with requests arriving at `rate` per second (Poisson); saturated beyond capacity."""
    prompt = np.asarray(prompt, dtype=float)
    output = np.asarray(output, dtype=float)
    rate = np.asarray(rate, dtype=float) + np.zeros(len(c))
    limit = max_batch(c, prompt + output, max_num_seqs, gpu_memory_utilization)
    work = prefill_time(c, prompt)
    rho = np.minimum(rate * work, 0.95)
    wait = rho * work / (2.0 * (1.0 - rho))
    batch = np.ones(len(c))
    # Little's law: running sequences = rate × time in service; damped fixed point (time grows with batch).
    for _ in range(iterations):
        itl = step_time(c, batch, prompt, output)
        service = _loaded_prefill(c, prompt, output, batch, max_num_batched_tokens) + c.theta_r
        in_service = service + wait + output * itl
        batch = np.clip(0.5 * batch + 0.5 * rate * in_service, 1.0, np.maximum(limit, 1.0))
    itl = step_time(c, batch, prompt, output)
    service = _loaded_prefill(c, prompt, output, batch, max_num_batched_tokens) + c.theta_r
    full = np.maximum(limit, 1.0)
    full_service = _loaded_prefill(c, prompt, output, full, max_num_batched_tokens) + c.theta_r
    capacity = full / (full_service + wait + output * step_time(c, full, prompt, output))
    saturated = (limit < 1) | (rate >= capacity) | (rate * work >= 0.95)
    return _figures(
        c, prompt, output, batch, itl, service, wait, np.zeros(len(c)), rate, tails, saturated=saturated
    )


def _figures(
    c: Configs,
    prompt: np.ndarray,
    output: np.ndarray,
    batch: np.ndarray,
    itl: np.ndarray,
    service: np.ndarray,
    wait: np.ndarray,
    slot_wait: np.ndarray,
    rate: np.ndarray,
    tails: Tails,
    *,
    saturated: np.ndarray,
) -> Latency:
    ttft = service + in_flight(np.maximum(batch, 1.0)) * itl / 2.0 + wait + slot_wait
    prefill_share = np.minimum(1.0, batch / np.maximum(output, 1.0))
    itl_p95 = itl * (1.0 + tails.itl_base + tails.itl_slope * prefill_share)
    ttft_p95 = ttft * tails.ttft
    decode = (output - 1.0) * itl
    e2e = ttft + decode
    e2e_p95 = ttft_p95 + decode * tails.e2e
    return Latency(
        ttft_p50=ttft,
        ttft_p95=ttft_p95,
        itl_p50=itl,
        itl_p95=itl_p95,
        e2e_p50=e2e,
        e2e_p95=e2e_p95,
        requests_per_s=rate,
        output_tokens_per_s=rate * output,
        batch=batch,
        saturated=np.asarray(saturated, dtype=bool),
    )
