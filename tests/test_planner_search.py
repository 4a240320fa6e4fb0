"""Capacity planning and ranking over the catalog, and the explanations when nothing can work."""

from __future__ import annotations

import itertools
import math
import warnings
from datetime import date

import numpy as np
import pytest

from hearth.planner.catalog import GpuSpec, seed_benchmarks, seed_gpus, seed_models
from hearth.planner.intent import parse_intent
from hearth.planner.predictor import Point, Predictor
from hearth.planner.schemas import Spec, Weights
from hearth.planner.search import HOURS_PER_MONTH, plan
from hearth.planner.spec import EXPERIENCE_CLASSES, PROFILES, USE_CASES, build_spec, expected_qps, slo_for
from hearth.platform.errors import HearthError


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(seed_models(), seed_gpus(), [r for _, r in seed_benchmarks()])


def chatbot(users: int = 5000, **changes: object) -> Spec:
    spec = build_spec(parse_intent(f"a chatbot for {users} employees"))
    return spec.model_copy(update=changes)


def test_spec_from_intent_and_workload_model() -> None:
    spec = chatbot()
    assert spec.use_case == "chatbot_conversational" and spec.experience_class == "conversational"
    assert (spec.traffic.prompt_tokens, spec.traffic.output_tokens) == (512, 256)
    assert (spec.slo.ttft_ms_p95, spec.slo.itl_ms_p95) == (500, 40)
    assert spec.slo.e2e_ms_p95 == 10700  # TTFT + output × ITL = 500 + 256 × 40 = 10,740, rounded to 100 ms
    # 5000 users × 10 % active × 20 requests/hour ÷ 3600 × peak 2
    assert expected_qps(spec.workload) == pytest.approx(5000 * 0.1 * 20 / 3600 * 2)
    # Latency-critical wording moves the class one step stricter, never looser.
    strict = build_spec(parse_intent("a chatbot for 5000 employees, low latency is critical"))
    assert strict.experience_class == "instant" and strict.slo.ttft_ms_p95 == 150


def test_every_template_and_class_is_defined() -> None:
    assert len(USE_CASES) == 9 and len(EXPERIENCE_CLASSES) == 5
    assert set(PROFILES.values()) == {(512, 256), (1024, 1024), (4096, 512), (10240, 1536)}
    for name, use_case in USE_CASES.items():
        slo = slo_for(use_case.profile, use_case.experience)
        assert slo.ttft_ms_p95 < slo.e2e_ms_p95, name
    # Stricter classes have stricter targets on every metric.
    order = ["instant", "conversational", "interactive", "deferred", "batch"]
    targets = [slo_for("512-256", c) for c in order]
    for a, b in itertools.pairwise(targets):
        assert a.ttft_ms_p95 < b.ttft_ms_p95 and a.itl_ms_p95 < b.itl_ms_p95 and a.e2e_ms_p95 < b.e2e_ms_p95


def test_every_option_meets_the_slos_at_the_load(predictor: Predictor) -> None:
    spec = chatbot()
    result = plan(predictor, spec, limit=200)
    qps = expected_qps(spec.workload)
    assert result.candidates_meeting_slo > 50 and result.candidates_evaluated >= result.candidates_meeting_slo
    gpus = {g.name: g for g in seed_gpus()}
    for o in result.balanced:
        assert o.ttft_ms_p95 <= 500 and o.itl_ms_p95 <= 40 and o.e2e_ms_p95 <= spec.slo.e2e_ms_p95
        assert o.replicas * o.requests_per_s_per_replica >= qps
        assert o.replicas == max(1, math.ceil(qps / o.requests_per_s_per_replica))
        assert o.monthly_cost == pytest.approx(
            o.replicas * o.gpus_per_replica * gpus[o.gpu].price_per_hour * HOURS_PER_MONTH, abs=0.01
        )  # rounded to cents
        assert o.gpu_product_label == gpus[o.gpu].product_label
        # The option's batch really meets the SLOs in the per-point predictor too.
        check = predictor.predict(
            Point(o.model_id, o.quantization, o.gpu, o.gpus_per_replica, 512, 256, concurrency=o.max_num_seqs)
        )
        assert check.itl_ms_p95 <= 40 * 1.001 and check.ttft_ms_p95 <= 500 * 1.001


def test_ranked_lists_and_pareto_front(predictor: Predictor) -> None:
    result = plan(predictor, chatbot(), limit=200)
    costs = [o.monthly_cost for o in result.cheapest]
    assert costs == sorted(costs)
    e2e = [o.e2e_ms_p95 for o in result.fastest]
    assert e2e == sorted(e2e)
    quality = [o.quality for o in result.best_accuracy]
    assert quality == sorted(quality, reverse=True)
    balanced = [o.scores["balanced"] for o in result.balanced]
    assert balanced == sorted(balanced, reverse=True)
    assert [o.rank for o in result.balanced[:3]] == [1, 2, 3]
    # Pareto: no option in the whole set is at least as cheap, as fast and as good, and better on one.
    front = result.pareto
    assert front and all(o.pareto for o in front)
    everyone = result.balanced
    for f in front:
        for o in everyone:
            dominated = (
                o.monthly_cost <= f.monthly_cost
                and o.e2e_ms_p95 <= f.e2e_ms_p95
                and o.quality >= f.quality
                and (o.monthly_cost < f.monthly_cost or o.e2e_ms_p95 < f.e2e_ms_p95 or o.quality > f.quality)
            )
            assert not dominated, (f.model_id, o.model_id)
    # The cheapest option and the most accurate one are on the front.
    assert result.cheapest[0].pareto


def test_weights_change_the_balanced_ranking(predictor: Predictor) -> None:
    spec = chatbot()
    accuracy_first = plan(predictor, spec, weights=Weights(accuracy=1, cost=0, latency=0, complexity=0))
    cost_first = plan(predictor, spec, weights=Weights(accuracy=0, cost=1, latency=0, complexity=0))
    assert accuracy_first.balanced[0].quality == max(o.quality for o in accuracy_first.best_accuracy)
    assert cost_first.balanced[0].monthly_cost == cost_first.cheapest[0].monthly_cost
    assert accuracy_first.balanced[0].model_id != cost_first.balanced[0].model_id


def test_more_users_need_more_replicas_or_bigger_batches(predictor: Predictor) -> None:
    small = plan(predictor, chatbot(500), models=["meta-llama/Llama-3.1-8B-Instruct"], gpus=["L4-24GB"])
    big = plan(predictor, chatbot(200_000), models=["meta-llama/Llama-3.1-8B-Instruct"], gpus=["L4-24GB"])
    assert big.cheapest[0].total_gpus > small.cheapest[0].total_gpus
    assert big.cheapest[0].monthly_cost > small.cheapest[0].monthly_cost


def test_what_if_editing_the_spec(predictor: Predictor) -> None:
    base = chatbot()
    looser = base.model_copy(update={"slo": slo_for("512-256", "interactive")})
    assert plan(predictor, looser).candidates_meeting_slo >= plan(predictor, base).candidates_meeting_slo
    only_h100 = plan(predictor, base.model_copy(update={"preferred_gpus": ["H100-80GB"]}))
    assert {o.gpu for o in only_h100.balanced} == {"H100-80GB"}
    fixed_qps = plan(predictor, base.model_copy(update={"qps": 50.0}))
    assert fixed_qps.expected_qps == 50.0


def test_search_is_fast(predictor: Predictor) -> None:
    plan(predictor, chatbot())  # warm the candidate cache
    result = plan(predictor, chatbot())
    # The timing target (≤ 100 ms) is checked by bench/planner.py; here only that it is not pathological.
    assert result.search_ms < 2000


def test_impossible_slos_are_explained(predictor: Predictor) -> None:
    spec = chatbot()
    spec = spec.model_copy(update={"slo": spec.slo.model_copy(update={"ttft_ms_p95": 2.0})})
    with pytest.raises(HearthError) as info:
        plan(predictor, spec)
    assert info.value.status == 422 and info.value.code == "slo_unattainable"
    assert "TTFT p95" in info.value.message and "closest" in info.value.message


def test_a_vanishing_slo_is_explained_without_numeric_warnings(predictor: Predictor) -> None:
    spec = chatbot()
    spec = spec.model_copy(update={"slo": spec.slo.model_copy(update={"ttft_ms_p95": 1e-307})})
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # numpy's overflow warning fails the test
        with pytest.raises(HearthError) as info:
            plan(predictor, spec)
    assert info.value.code == "slo_unattainable" and "TTFT p95" in info.value.message


def test_budget_too_small_is_explained(predictor: Predictor) -> None:
    with pytest.raises(HearthError) as info:
        plan(predictor, chatbot(budget_per_month=50.0))
    assert info.value.code == "over_budget" and "$50/month" in info.value.message
    within = plan(predictor, chatbot(budget_per_month=3000.0))
    assert all(o.monthly_cost <= 3000 for o in within.balanced) and within.notes


def test_unknown_names_are_404(predictor: Predictor) -> None:
    with pytest.raises(HearthError) as info:
        plan(predictor, chatbot(), models=["acme/NoSuchModel"])
    assert info.value.status == 404 and "acme/NoSuchModel" in info.value.message
    with pytest.raises(HearthError) as info:
        plan(predictor, chatbot(), gpus=["RTX-4090"])
    assert info.value.status == 404 and "H100-80GB" in info.value.message  # lists the known ones


def test_a_model_that_fits_on_no_gpu_is_explained() -> None:
    # NVIDIA T4 (16 GB, 320 GB/s, 65 TFLOPS fp16, no FP8), at most 4 in a node.
    t4 = GpuSpec(
        name="T4-16GB",
        product_label="Tesla-T4",
        memory_gb=16,
        bandwidth_gbs=320,
        tflops_bf16=65,
        tflops_fp8=None,
        interconnect_gbs=32,
        max_per_node=4,
        price_per_hour=0.53,
        price_source="test",
        price_date=date(2025, 1, 1),
        source="NVIDIA T4 datasheet",
    )
    predictor = Predictor(seed_models(), [t4], [])
    with pytest.raises(HearthError) as info:
        plan(predictor, chatbot(), models=["meta-llama/Llama-3.3-70B-Instruct"])
    assert info.value.code == "does_not_fit"
    assert "Llama-3.3-70B" in info.value.message and "T4-16GB" in info.value.message


def test_zero_or_negative_users_are_rejected() -> None:
    from pydantic import ValidationError

    from hearth.planner.schemas import Workload

    for users in (0, -5):
        with pytest.raises(ValidationError):
            Workload(users=users, active_fraction=0.1, requests_per_active_user_hour=10, peak_multiplier=2)
    with pytest.raises(ValueError):
        parse_intent("a chatbot for our company")  # no number of users at all


def test_vectorised_search_agrees_with_the_point_model(predictor: Predictor) -> None:
    result = plan(predictor, chatbot(), models=["Qwen/Qwen2.5-7B-Instruct"], gpus=["A100-80GB"])
    o = result.cheapest[0]
    point = predictor.predict(
        Point(o.model_id, o.quantization, o.gpu, o.gpus_per_replica, 512, 256, concurrency=o.max_num_seqs)
    )
    assert o.requests_per_s_per_replica == pytest.approx(point.requests_per_s, rel=0.01)
    assert np.isfinite(o.e2e_ms_p95) and o.e2e_ms_p95 <= point.e2e_ms_p95 * 1.01


def test_pareto_front_matches_its_definition() -> None:
    from hearth.planner.search import _pareto

    rng = np.random.default_rng(7)
    for _ in range(30):
        pts = rng.integers(0, 6, (80, 3)).astype(float)  # ties and duplicates on purpose
        at_least = (pts[:, None, :] <= pts[None, :, :]).all(axis=2)
        better = (pts[:, None, :] < pts[None, :, :]).any(axis=2)
        expected = ~(at_least & better).any(axis=0)
        assert (_pareto(*pts.T) == expected).all()
