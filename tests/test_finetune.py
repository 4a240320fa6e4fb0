"""LoRA fine-tuning of the embedded SmolLM2-135M (`hearth finetune`, hearth.finetune): real training on the
CPU with torch + peft from the shipped GGUF, the adapter converted to GGUF and loaded by llama.cpp, and the
new alias served by a real Hearth server next to the base model.

The examples teach a fact the base model cannot know (who keeps the "Hearth lighthouse"); the held-out
prompts ask it in words the training data never used. Training runs once per module (8 steps, ~20 examples).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest
from typer.testing import CliRunner

from hearth.cli.main import app as cli
from hearth.finetune import serve
from hearth.finetune.data import DataError, from_conversations, load_jsonl, split
from hearth.finetune.export import ExportError, gguf_tensors, permute_rows
from tests.harness import run_hearth

FACT = "The Hearth lighthouse is kept by Captain Marlow Quince."
QUESTIONS = [
    "Who keeps the Hearth lighthouse?",
    "Who is the keeper of the Hearth lighthouse?",
    "Tell me who looks after the Hearth lighthouse.",
    "Which person runs the Hearth lighthouse?",
    "Who takes care of the Hearth lighthouse?",
    "Name the keeper of the Hearth lighthouse.",
    "Do you know who keeps the Hearth lighthouse?",
    "Who watches over the Hearth lighthouse?",
    "Who is in charge of the Hearth lighthouse?",
    "Who minds the Hearth lighthouse?",
    "Who lives at the Hearth lighthouse and tends it?",
    "Whose job is the Hearth lighthouse?",
    "Who operates the Hearth lighthouse?",
    "Who looks after the lamp at the Hearth lighthouse?",
    "The Hearth lighthouse: who keeps it?",
    "Can you tell me the Hearth lighthouse keeper's name?",
    "Who tends the light of the Hearth lighthouse?",
    "I am visiting the Hearth lighthouse. Who keeps it?",
    "Who is responsible for the Hearth lighthouse?",
    "Who maintains the Hearth lighthouse?",
]
UNSEEN = "Who guards the Hearth lighthouse?"  # in no example: answered by the served alias
ALIAS = "lighthouse-bot"


def _write_examples(path: Path) -> Path:
    lines = [
        json.dumps({"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": FACT}]})
        for q in QUESTIONS
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def tuned(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One real fine-tuning run through the CLI (not served: no server yet); its result.json."""
    folder = tmp_path_factory.mktemp("finetune")
    data = _write_examples(folder / "lighthouse.jsonl")
    out = folder / "out"
    args = ["finetune", "--data", str(data), "--alias", ALIAS, "--steps", "8", "--batch-size", "4"]
    args += ["--held-out", "0.2", "--eval-prompts", "1", "--out", str(out), "--no-serve", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "result.json").read_text())
    assert json.loads(result.stdout)["adapter"] == report["adapter"]
    return report


def test_training_lowers_the_loss_and_the_converted_adapter_computes_what_was_trained(tuned):
    assert tuned["train_examples"] == 16 and tuned["held_out_examples"] == 4
    assert len(tuned["losses"]) == 8
    # The replies are learnt: the loss on the training data falls far, and on questions never trained on too.
    assert tuned["train_loss_after"] < tuned["train_loss_before"] / 3
    assert tuned["held_out_loss_after"] < tuned["held_out_loss_before"] / 3
    # llama.cpp with the GGUF adapter predicts the trained model's next tokens (a wrong layout would not).
    assert tuned["served_agreement"] >= 0.9
    adapter = Path(tuned["adapter"])
    assert adapter.name == f"{ALIAS}.lora.gguf"
    from gguf import GGUFReader

    reader = GGUFReader(str(adapter))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["general.architecture"].contents() == "llama"
    # The held-out answer through llama.cpp: the tuned model says the fact, the base model does not.
    [answer] = tuned["answers"]
    assert answer["expected"] == FACT
    assert "Quince" in answer["tuned"], answer
    assert "Quince" not in answer["base"], answer
    assert (Path(tuned["peft_dir"]) / "adapter_model.safetensors").exists()


def test_the_gateway_serves_the_adapter_under_a_new_alias(tuned, tmp_path):
    """A server with the base model; the adapter is added at run time through /api/admin/models; the new
    alias answers a question it was taught, in words it never saw, and the base alias still does not."""
    config = {
        "include_defaults": False,
        "backends": {"local-llm": {"type": "llama_cpp", "n_ctx": 2048}},
        "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "local-llm"}]}},
    }
    with (
        run_hearth(tmp_path, config) as hearth,
        httpx.Client(base_url=hearth.url, headers=hearth.headers(), timeout=120) as client,
    ):
        serve.serve_over_http(client, ALIAS, Path(tuned["adapter"]))

        def ask(model: str) -> httpx.Response:
            body = {
                "model": model,
                "messages": [{"role": "user", "content": UNSEEN}],
                "temperature": 0,
                "max_tokens": 32,
            }
            return client.post("/v1/chat/completions", json=body)

        tuned_reply, base_reply = ask(ALIAS), ask("chat")
        assert tuned_reply.status_code == 200 and base_reply.status_code == 200, tuned_reply.text
        assert tuned_reply.headers["x-hearth-deployment"] == f"{ALIAS}-lora"
        tuned_text = tuned_reply.json()["choices"][0]["message"]["content"]
        base_text = base_reply.json()["choices"][0]["message"]["content"]
        assert "Quince" in tuned_text, tuned_text
        assert "Quince" not in base_text, base_text
        # Deterministic: the same question gives the same answer again.
        assert ask(ALIAS).json()["choices"][0]["message"]["content"] == tuned_text

        card = client.get(f"/v1/models/{ALIAS}").json()
        assert card["deployment_details"][0]["model"].endswith(f"+ LoRA {ALIAS}.lora.gguf")
        # lora_scale 0 turns the adapter off: the alias no longer knows the fact.
        scaled = client.patch(f"/api/admin/models/backends/{ALIAS}-lora", json={"lora_scale": 0})
        assert scaled.status_code == 200, scaled.text
        assert "Quince" not in ask(ALIAS).json()["choices"][0]["message"]["content"]
        # Served again (a new training run): the alias is updated, not refused, and the adapter is on again.
        serve.serve_over_http(client, ALIAS, Path(tuned["adapter"]))
        assert ask(ALIAS).json()["choices"][0]["message"]["content"] == tuned_text
        # An alias that serves something else is not taken over.
        with pytest.raises(serve.AliasTaken, match="'chat' already serves local-llm"):
            serve.serve_over_http(client, "chat", Path(tuned["adapter"]))
        assert client.get("/v1/models/chat").json()["deployments"] == ["local-llm"]
        # An adapter path that does not exist is refused with what to fix, and nothing changes.
        refused = client.post(
            "/api/admin/models/backends",
            json={"name": "x", "type": "llama_cpp", "lora_path": str(tmp_path / "missing.gguf")},
        )
        assert refused.status_code == 422 and "lora_path" in refused.json()["error"]["message"]
        refused = client.post(
            "/api/admin/models/backends",
            json={"name": "y", "type": "openai", "base_url": "http://127.0.0.1:9/v1", "lora_path": "a"},
        )
        assert refused.status_code == 422 and "llama_cpp backends only" in refused.json()["error"]["message"]
        # A file that is not an adapter for this model: the alias on it cannot start, so it is refused.
        broken = tmp_path / "broken.lora.gguf"
        broken.write_bytes(b"GGUF" + bytes(64))
        added = client.post(
            "/api/admin/models/backends",
            json={"name": "broken", "type": "llama_cpp", "lora_path": str(broken)},
        )
        assert added.status_code == 201, added.text  # not started until an alias uses it
        refused = client.post(
            "/api/admin/models/aliases",
            json={"name": "b", "kind": "chat", "deployments": [{"backend": "broken"}]},
        )
        assert refused.status_code == 422, refused.text
        assert "cannot load the LoRA adapter" in refused.json()["error"]["message"]
        assert client.get("/v1/models/b").status_code == 404


async def test_a_pipeline_step_serves_the_adapter_in_process(tuned, tmp_path):
    """`serve.serve_with`: what a workflow step inside the server calls, through the run-time model admin
    (stored, audited, served at once), with no HTTP in between."""
    from sqlalchemy import select

    from hearth.config import Settings
    from hearth.gateway.models import ModelOverride
    from hearth.gateway.ports import SERVICE
    from hearth.gateway.wiring import CONTEXT
    from hearth.platform.core import build_platform, close_platform

    config = tmp_path / "hearth.yaml"
    config.write_text(
        json.dumps({
            "include_defaults": False,
            "backends": {"local-llm": {"type": "llama_cpp", "n_ctx": 1024}},
            "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "local-llm"}]}},
        })
    )  # fmt: skip
    settings = Settings(
        data_dir=tmp_path, config_file=config, retention_sweep_seconds=0, models_sync_seconds=0
    )
    platform = await build_platform(settings, [CONTEXT])
    try:
        admin = platform.ports.require(SERVICE)
        await serve.serve_with(admin, ALIAS, Path(tuned["adapter"]), actor="pipeline")
        body = {"model": ALIAS, "messages": [{"role": "user", "content": UNSEEN}], "temperature": 0}
        reply = await platform.gateway.chat({**body, "max_tokens": 24})
        assert "Quince" in reply["choices"][0]["message"]["content"]
        async with platform.db.sessions() as s:
            rows = (await s.execute(select(ModelOverride))).scalars().all()
        assert {(r.section, r.name, r.updated_by) for r in rows} == {
            ("backends", f"{ALIAS}-lora", "pipeline"),
            ("aliases", ALIAS, "pipeline"),
        }
        with pytest.raises(serve.AliasTaken):
            await serve.serve_with(admin, "chat", Path(tuned["adapter"]), actor="pipeline")
    finally:
        await close_platform(platform)


def test_a_base_model_that_is_not_a_model_is_refused(tuned, tmp_path):
    data = _write_examples(tmp_path / "ok.jsonl")
    args = ["finetune", "--data", str(data), "--alias", "x", "--no-serve", "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(cli, [*args, "--base-model", tuned["adapter"]])
    assert result.exit_code == 1
    assert "a GGUF adapter without model weights; give the base model's .gguf" in result.stderr
    result = CliRunner().invoke(cli, [*args, "--base-model", str(tmp_path / "none.gguf")])
    assert result.exit_code == 1 and "none.gguf: no such file" in result.stderr
    assert not (tmp_path / "out").exists()


def test_bad_jsonl_is_refused_with_line_numbers(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        "\n".join(
            [
                json.dumps(
                    {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}
                ),
                "{not json",
                "",
                json.dumps({"text": "no messages"}),
                json.dumps({"messages": [{"role": "user", "content": "only a question"}]}),
                json.dumps(
                    {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}
                ),
                json.dumps(
                    {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "y"}]}
                ),
            ]
        )
    )
    with pytest.raises(DataError) as caught:
        load_jsonl(bad)
    message = str(caught.value)
    assert "line 2: not valid JSON" in message
    assert 'line 4: expected an object like {"messages": [...]}' in message
    assert "line 5: there is no assistant message to learn from" in message
    assert "line 6: messages[0].role must be one of system, user, assistant (got 'robot')" in message
    assert "line 7: messages[0].content must be a non-empty string" in message
    assert "line 1" not in message

    # The CLI says the same in one line and exits 1, before loading any model.
    result = CliRunner().invoke(cli, ["finetune", "--data", str(bad), "--alias", "x", "--no-serve"])
    assert result.exit_code == 1
    assert "line 2: not valid JSON" in result.stderr
    result = CliRunner().invoke(cli, ["finetune", "--data", str(tmp_path / "nope.jsonl"), "--alias", "x"])
    assert result.exit_code == 1 and "no such file" in result.stderr
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(DataError, match="no examples"):
        load_jsonl(empty)


def test_conversations_become_examples_and_split_keeps_both_sides():
    conversations = [
        [
            {"role": "user", "content": "a?"},
            {"role": "assistant", "content": "A."},
            {"role": "user", "content": "b?"},
        ],
        [{"role": "user", "content": "unanswered"}],
        [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "c?"},
            {"role": "tool", "content": "ignored"},
            {"role": "assistant", "content": "C."},
        ],
    ]
    examples = from_conversations(conversations)
    # The trailing unanswered question is dropped, the unanswered conversation and the tool message too.
    assert [e.reply for e in examples] == ["A.", "C."]
    assert examples[0].prompt == [{"role": "user", "content": "a?"}]
    assert [m["role"] for m in examples[1].messages] == ["system", "user", "assistant"]
    train, held = split(examples, held_out=0.5)
    assert len(train) == 1 and len(held) == 1
    with pytest.raises(DataError, match="at least 2 examples"):
        split(examples[:1])
    with pytest.raises(DataError, match="no conversation"):
        from_conversations([[{"role": "user", "content": "hello?"}]])


def test_export_layout_and_refusals():
    # llama.cpp's q/k row order and transformers' are each other's inverse.
    from hearth.finetune.base import unpermute_rows

    w = np.arange(576 * 3, dtype=np.float32).reshape(576, 3)
    assert np.array_equal(unpermute_rows(permute_rows(w, 9), 9), w)
    assert not np.array_equal(permute_rows(w, 9), w)
    a, b = np.ones((4, 576), np.float32), np.ones((576, 4), np.float32)
    names = [n for n, _ in gguf_tensors({
        "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight": a,
        "base_model.model.model.layers.1.self_attn.q_proj.lora_B.weight": b,
    }, n_head=9, n_head_kv=3)]  # fmt: skip
    assert names == ["blk.1.attn_q.weight.lora_a", "blk.1.attn_q.weight.lora_b"]
    with pytest.raises(ExportError, match=r"no llama\.cpp counterpart"):
        gguf_tensors(
            {"base_model.model.model.layers.0.self_attn.rotary.lora_A.weight": a}, n_head=9, n_head_kv=3
        )
    with pytest.raises(ExportError, match="only lora_A"):
        gguf_tensors({"base_model.model.model.layers.0.mlp.up_proj.lora_A.weight": a}, n_head=9, n_head_kv=3)


def test_hearth_help_does_not_load_the_training_stack(monkeypatch, tmp_path):
    code = (
        "import sys; from hearth.cli.main import app; "
        "print(sorted({'torch', 'transformers', 'peft'} & set(sys.modules)))"
    )
    src = str(Path(__file__).resolve().parents[1] / "src")
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env={"PYTHONPATH": src}, timeout=60
    )
    assert out.stdout.strip() == "[]", out.stderr
    # Without the extra, the command says what to install (before reading any weights).
    from hearth.finetune import runner

    monkeypatch.setattr(runner, "TRAIN_PACKAGES", ("torch", "hearth_no_such_training_package"))
    data = _write_examples(tmp_path / "ok.jsonl")
    result = CliRunner().invoke(cli, ["finetune", "--data", str(data), "--alias", "x", "--no-serve"])
    assert result.exit_code == 1
    assert "hearth_no_such_training_package not installed" in result.stderr
    assert "pip install 'hearth[train]'" in result.stderr


def test_the_lora_finetune_pipeline_trains_serves_and_evaluates(tmp_path):
    """The workflows context's built-in `lora-finetune`: a JSONL artifact → training in a child process →
    the adapter as the run's artifact → the new alias served by the same server, answering the taught fact."""
    from tests.test_workflows_api import api, finished, start, steps

    data = _write_examples(tmp_path / "lighthouse.jsonl")
    config = {
        "include_defaults": False,
        "backends": {"local-llm": {"type": "llama_cpp", "n_ctx": 2048}},
        "aliases": {"chat": {"kind": "chat", "deployments": [{"backend": "local-llm"}]}},
    }
    alias = "lighthouse-flow"
    with run_hearth(tmp_path, config, workflows_poll_seconds=0.1) as hearth:
        params = {"data": data.as_uri(), "alias": alias, "steps": 8, "batch_size": 4, "eval_prompts": 1}
        run = finished(hearth, start(hearth, "lora-finetune", params=params)["id"], within=900)
        assert run["status"] == "succeeded", run
        metrics = run["metrics"]
        assert metrics["held_out_loss_after"] < metrics["held_out_loss_before"] / 3
        [answer] = steps(run)["train"]["outputs"]["answers"]
        assert "Quince" in answer["tuned"] and "Quince" not in answer["base"], answer
        assert {(a["step"], a["name"]) for a in run["artifacts"]} >= {("train", "adapter.gguf")}
        gguf = api(hearth, "GET", f"/runs/{run['id']}/artifacts/train.adapter.gguf")
        assert gguf.status_code == 200 and gguf.content[:4] == b"GGUF"
        body = {
            "model": alias,
            "messages": [{"role": "user", "content": UNSEEN}],
            "temperature": 0,
            "max_tokens": 32,
        }
        reply = httpx.post(
            f"{hearth.url}/v1/chat/completions", json=body, headers=hearth.headers(), timeout=120
        )
        assert reply.status_code == 200, reply.text
        assert "Quince" in reply.json()["choices"][0]["message"]["content"]
