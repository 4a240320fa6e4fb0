"""From an intent to a deployment specification: traffic profile, p95 SLO targets and expected load.

Traffic profiles are GuideLLM's four standard (prompt → output) token shapes. SLO targets come from five
experience classes, each grounded in a published human-factors figure, and nine use-case templates that pick
a class and a profile. Expected QPS comes from a workload model whose every assumption is a field the user
can edit.

Where the targets come from (p95, so 19 of 20 requests must do at least this well):
- Nielsen, "Response Times: The 3 Important Limits" (1993, after Miller 1968 and Card et al. 1991): 0.1 s
  feels instantaneous, 1 s keeps the flow of thought, 10 s is the limit of attention.
- Reading speed: adults read silently at ~238 words/min ≈ 5.3 tokens/s (Brysbaert 2019, "How many words do
  we read per minute?", J. Memory and Language; ~1.33 tokens per English word). Streamed text must outrun the
  reader with room to skim: an ITL of 50 ms (20 tokens/s, ~4× reading speed) for prose, 40 ms in chat, where
  readers skim replies; below ~20 ms streaming looks like a block appearing at once, which is what completion
  in an editor needs.
- Code completion must land before the next keystroke pause: TTFT ≤ 150 ms (inline suggestions studies put
  acceptable latency in the 100–200 ms range; 0.1 s is Nielsen's instantaneous limit).
E2E targets are TTFT + output tokens × ITL for the profile (both at their targets), so they never loosen the
other two; a batch job is judged by E2E and throughput only, so its TTFT/ITL targets are loose by design.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from hearth.planner.schemas import Intent, SloTargets, Spec, TrafficProfile, Workload

# GuideLLM's standard traffic shapes (prompt tokens, output tokens).
PROFILES: dict[str, tuple[int, int]] = {
    "512-256": (512, 256),
    "1024-1024": (1024, 1024),
    "4096-512": (4096, 512),
    "10240-1536": (10240, 1536),
}


@dataclass(frozen=True)
class ExperienceClass:
    ttft_ms: float
    itl_ms: float
    why: str


EXPERIENCE_CLASSES: dict[str, ExperienceClass] = {
    "instant": ExperienceClass(
        150,
        20,
        "appears as you type: Nielsen's 0.1 s limit plus network; ITL fast "
        "enough that a suggestion lands as a block",
    ),
    "conversational": ExperienceClass(
        500, 40, "a chat reply starts within half a second and streams at ~25 tokens/s, ~5× reading speed"
    ),
    "interactive": ExperienceClass(
        1000, 50, "Nielsen's 1 s flow limit for the first token; 20 tokens/s, ~4× reading speed"
    ),
    "deferred": ExperienceClass(
        10000,
        100,
        "the user waits for a longer document: Nielsen's 10 s attention "
        "limit for the start, 10 tokens/s, still above reading speed",
    ),
    "batch": ExperienceClass(60000, 250, "nobody watches: only E2E and throughput matter"),
}
CLASS_ORDER = ["instant", "conversational", "interactive", "deferred", "batch"]


@dataclass(frozen=True)
class UseCase:
    description: str
    profile: str
    experience: str
    # Workload model defaults: share of users active in the peak hour, requests per active user per hour,
    # peak-to-average ratio within the hour.
    active_fraction: float
    requests_per_active_user_hour: float
    peak_multiplier: float
    task: str  # a catalog task the model must support


USE_CASES: dict[str, UseCase] = {
    "chatbot_conversational": UseCase(
        "chat assistant answering questions", "512-256", "conversational", 0.10, 20, 2.0, "chat"
    ),
    "code_completion": UseCase(
        "inline code completion in an editor", "512-256", "instant", 0.20, 120, 2.0, "code"
    ),
    "code_generation_detailed": UseCase(
        "generating and explaining whole functions or files",
        "1024-1024",
        "interactive",
        0.15,
        10,
        2.0,
        "code",
    ),
    "translation": UseCase(
        "translating documents or messages", "1024-1024", "interactive", 0.10, 10, 2.0, "translation"
    ),
    "content_generation": UseCase(
        "drafting articles, emails, marketing copy", "1024-1024", "interactive", 0.10, 6, 2.0, "generation"
    ),
    "summarization_short": UseCase(
        "summarising a page or a thread", "4096-512", "interactive", 0.10, 8, 2.0, "summarization"
    ),
    "document_analysis_rag": UseCase(
        "questions over retrieved documents (RAG)", "4096-512", "conversational", 0.10, 15, 2.0, "rag"
    ),
    "long_document_summarization": UseCase(
        "summarising long reports or transcripts", "10240-1536", "deferred", 0.05, 4, 2.0, "summarization"
    ),
    "research_legal_analysis": UseCase(
        "deep analysis of long legal or research documents", "10240-1536", "batch", 0.05, 3, 1.5, "analysis"
    ),
}


def slo_for(profile: str, experience: str) -> SloTargets:
    """p95 targets for a class on a profile; E2E is TTFT plus the profile's output at the ITL target."""
    cls = EXPERIENCE_CLASSES[experience]
    _, output = PROFILES[profile]
    return SloTargets(
        ttft_ms_p95=cls.ttft_ms,
        itl_ms_p95=cls.itl_ms,
        e2e_ms_p95=float(round(cls.ttft_ms + output * cls.itl_ms, -2)),
    )


def expected_qps(workload: Workload) -> float:
    """Peak requests/s: users × active share × requests per active user-hour / 3600 × peak multiplier."""
    return (
        workload.users
        * workload.active_fraction
        * workload.requests_per_active_user_hour
        / 3600.0
        * workload.peak_multiplier
    )


def build_spec(intent: Intent) -> Spec:
    """The full, editable specification for an intent."""
    use_case = USE_CASES[intent.use_case]
    experience = use_case.experience
    if intent.latency_priority == "high":
        # Stricter, never looser: a latency-critical chatbot gets the next class up.
        experience = CLASS_ORDER[max(0, CLASS_ORDER.index(experience) - 1)]
    prompt, output = PROFILES[use_case.profile]
    workload = Workload(
        users=intent.users,
        active_fraction=use_case.active_fraction,
        requests_per_active_user_hour=use_case.requests_per_active_user_hour,
        peak_multiplier=use_case.peak_multiplier,
    )
    return Spec(
        use_case=intent.use_case,
        description=use_case.description,
        experience_class=experience,
        traffic=TrafficProfile(name=use_case.profile, prompt_tokens=prompt, output_tokens=output),
        slo=slo_for(use_case.profile, experience),
        workload=workload,
        qps=None,
        budget_per_month=intent.budget_per_month,
        preferred_gpus=list(intent.preferred_gpus),
        task=use_case.task,
        domain=intent.domain,
    )


def max_model_len(prompt: int, output: int, context: int) -> int:
    """vLLM's --max-model-len: the profile's tokens plus 50 %, rounded up to 1024, within the model."""
    return int(min(context, math.ceil((prompt + output) * 1.5 / 1024) * 1024))
