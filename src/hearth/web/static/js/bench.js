// Bench: run a short benchmark of an alias or a URL at a few concurrency levels, follow it live (server-sent
// events from POST /api/bench/runs), then the figures per level and two charts; past runs below.
import { api, streamEvents } from "./api.js";
import { el, toast, when } from "./dom.js";
import { lineChart } from "./charts.js";

const $ = (id) => document.getElementById(id);
let running = null; // AbortController of the run in progress
let levels = [];

const fmt = (v, digits = 0) => (v == null ? "—" : Number(v).toFixed(digits));

function targetKind() {
  return document.querySelector('input[name="target"]:checked').value;
}

for (const radio of document.querySelectorAll('input[name="target"]')) {
  radio.addEventListener("change", () => {
    const url = targetKind() === "url";
    $("url-fields").hidden = !url;
    $("alias-fields").hidden = url;
    $("bench-url").required = url;
    $("bench-model").required = url;
  });
}

function request() {
  const body = {
    concurrency: $("bench-levels").value.split(",").map((s) => Number(s.trim())).filter((n) => n > 0),
    requests: Number($("bench-requests").value),
    prompt_tokens: Number($("bench-prompt").value),
    output_tokens: Number($("bench-output").value),
  };
  if (targetKind() === "url") {
    body.url = $("bench-url").value.trim();
    body.model = $("bench-model").value.trim();
    if ($("bench-key").value) body.api_key = $("bench-key").value;
  } else {
    body.alias = $("bench-alias").value;
  }
  return body;
}

function showLevels(list) {
  levels = list;
  $("level-rows").replaceChildren(
    ...list.map((l) =>
      el(
        "tr",
        { dataset: { concurrency: l.concurrency } },
        el("td", {}, l.strategy),
        el("td", {}, `${l.successful} / ${l.errored + l.incomplete}`),
        el("td", {}, fmt(l.requests_per_s, 2)),
        el("td", {}, fmt(l.output_tokens_per_s, 1)),
        el("td", {}, `${fmt(l.ttft_ms.p50)} / ${fmt(l.ttft_ms.p95)} ms`),
        el("td", {}, `${fmt(l.itl_ms.p50, 1)} ms`),
        el("td", {}, `${fmt(l.e2e_ms.p50)} / ${fmt(l.e2e_ms.p95)} ms`),
      ),
    ),
  );
  const ok = list.filter((l) => l.successful > 0);
  const series = (name, pick) => ({ name, points: ok.map((l) => ({ x: l.concurrency, y: pick(l) })) });
  $("latency-chart").replaceChildren(
    lineChart(
      [
        series("TTFT p50", (l) => l.ttft_ms.p50),
        series("TTFT p95", (l) => l.ttft_ms.p95),
        series("E2E p50", (l) => l.e2e_ms.p50),
        series("E2E p95", (l) => l.e2e_ms.p95),
      ],
      { title: "Latency (ms) against concurrency", xLabel: "concurrency (streams)", yLabel: "ms" },
    ),
  );
  $("throughput-chart").replaceChildren(
    lineChart([series("output tokens/s", (l) => l.output_tokens_per_s)], {
      title: "Output tokens per second against concurrency",
      xLabel: "concurrency (streams)",
      yLabel: "tokens/s",
    }),
  );
  $("bench-results").hidden = list.length === 0;
}

function progress(e, totalLevels) {
  const done = (e.level + Math.min(1, e.finished / e.requests)) / totalLevels;
  $("bench-progress").value = done;
  $("bench-status").textContent =
    `${e.strategy}: ${e.finished} of ${e.requests} requests done` + (e.errored ? `, ${e.errored} failed` : "") + ` (level ${e.level + 1} of ${totalLevels})`;
}

function finishRun() {
  running = null;
  $("bench-run").disabled = false;
  $("bench-stop").hidden = true;
  $("bench-progress").hidden = true;
  loadRuns();
}

$("bench-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  if (running) return;
  const body = request();
  running = new AbortController();
  $("bench-run").disabled = true;
  $("bench-stop").hidden = false;
  $("bench-progress").hidden = false;
  $("bench-progress").value = 0;
  $("bench-status").textContent = "Preparing the prompts…";
  $("bench-form").dataset.state = "running";
  showLevels([]);
  const done = [];
  let total = body.concurrency.length;
  try {
    for await (const { event, data } of streamEvents("/api/bench/runs", { json: body, signal: running.signal })) {
      if (event === "started") total = data.levels.length;
      else if (event === "progress") progress(data, total);
      else if (event === "level") {
        done.push(data.level);
        showLevels(done);
      } else if (event === "done") {
        $("bench-status").textContent = `Done: ${data.run.levels.length} level(s) measured.`;
        $("bench-form").dataset.state = "done";
      } else if (event === "error") {
        $("bench-status").textContent = `The run failed: ${data.message}`;
        $("bench-form").dataset.state = "failed";
      }
    }
  } catch (err) {
    if (err.name === "AbortError") {
      $("bench-status").textContent = "Stopped.";
      $("bench-form").dataset.state = "stopped";
    } else {
      $("bench-status").textContent = `The run failed: ${err.message}`;
      $("bench-form").dataset.state = "failed";
    }
  } finally {
    finishRun();
  }
});

$("bench-stop").addEventListener("click", () => running?.abort());

async function loadRuns() {
  const runs = await api("/api/bench/runs");
  $("run-rows").replaceChildren(
    ...(runs.length
      ? runs.map((r) =>
          el(
            "tr",
            { dataset: { id: r.id, status: r.status } },
            el("td", {}, when(r.created_at)),
            el("td", {}, r.target),
            el("td", {}, r.levels.map((l) => l.concurrency).join(", ") || "—"),
            el("td", {}, el("span", { class: `status status-${r.status === "completed" ? "indexed" : "failed"}`, title: r.error ?? "" }, r.status)),
            el("td", {}, el("button", { type: "button", class: "small", disabled: !r.levels.length, "aria-label": `Show the run of ${when(r.created_at)}`, onclick: () => showLevels(r.levels) }, "Show")),
          ),
        )
      : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No runs yet."))]),
  );
}

async function loadAliases() {
  const models = await api("/v1/models");
  const chat = models.data.filter((m) => m.kind === "chat");
  $("bench-alias").replaceChildren(...chat.map((m) => el("option", { value: m.id }, m.id)));
}

Promise.all([loadAliases(), loadRuns()]).catch((e) => toast(e.message, "error"));
