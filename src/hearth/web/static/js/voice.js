// Voice: record from the microphone (MediaRecorder, webm/opus), stream it to /api/voice/stream as it is
// recorded, show the transcript and the reply as they arrive, play each spoken sentence as soon as it comes
// (Web Audio, queued back to back), interrupt (barge-in) with the microphone button, the Stop button or Esc,
// and show the latency of each stage. The socket signs in with the page's session cookie (same origin only).
import { api } from "./api.js";
import { el, toast } from "./dom.js";

const $ = (id) => document.getElementById(id);
const STAGES = [
  ["transcription", "speech to text"],
  ["llm_first_token", "LLM first token"],
  ["llm_first_sentence", "LLM first sentence"],
  ["first_tts", "first sentence's speech"],
  ["first_audio", "first audio ready"],
  ["total", "whole turn"],
];

let ws = null;
let sessionId = null;
let retries = 0;
let recorder = null;
let mic = null; // the MediaStream while recording
let sending = Promise.resolve(); // binary frames go out in recording order
let audio = null; // AudioContext, made on the first click (browsers' autoplay rule)
let playHead = 0;
const sources = new Set();
let turn = null; // the turn being recorded or answered

function setState(state, text) {
  const box = $("voice-state");
  box.dataset.state = state;
  box.textContent = text;
  const recording = state === "recording";
  $("mic").setAttribute("aria-pressed", String(recording));
  $("mic").classList.toggle("live", recording);
  $("mic-label").textContent = recording ? "Stop and send" : "Start talking";
  $("mic").disabled = state === "connecting" || state === "closed";
}

function send(message) {
  if (ws?.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function connect() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = sessionId ? `?session_id=${encodeURIComponent(sessionId)}` : "";
  ws = new WebSocket(`${scheme}://${location.host}/api/voice/stream${query}`);
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = (e) => {
    stopRecording(false);
    if (e.code === 4401) {
      location.assign(`/login?next=${encodeURIComponent(location.pathname)}`);
    } else if (e.code === 4403) {
      setState("closed", "This page may not use the voice connection.");
    } else if (retries < 5) {
      setState("connecting", "Reconnecting…");
      setTimeout(connect, 500 * 2 ** retries++);
    } else {
      setState("closed", "The voice connection closed. Reload the page to try again.");
    }
  };
}

// -- a turn on the page --------------------------------------------------------------------------------

function newTurn() {
  const you = el("span", { class: "text" });
  const reply = el("span", { class: "text" });
  const latency = el("dl", { class: "facts latency", "aria-label": "Latency of each stage" });
  const li = el(
    "li",
    { class: "turn", dataset: { status: "listening", clips: "0", audioSeconds: "0" } },
    el("p", { class: "you" }, el("strong", {}, "You: "), you),
    el("p", { class: "hearth" }, el("strong", {}, "Hearth: "), reply),
    latency,
  );
  $("turns").prepend(li);
  return { li, you, reply, latency, stages: null, clips: 0, seconds: 0, endAt: 0, firstSound: 0, done: false };
}

function finish(t, status) {
  if (!t || t.done) return;
  t.done = true;
  t.li.dataset.status = status;
  $("interrupt").disabled = sources.size === 0;
}

function showLatency(t, latency = t.stages) {
  t.stages = latency;
  if (!latency) return;
  const rows = STAGES.filter(([key]) => latency?.[key] != null).flatMap(([key, label]) => [
    el("dt", {}, label),
    el("dd", { dataset: { stage: key } }, `${Math.round(latency[key])} ms`),
  ]);
  if (t.firstSound) {
    rows.push(el("dt", {}, "you stopped → first sound"), el("dd", { dataset: { stage: "heard" } }, `${Math.round(t.firstSound - t.endAt)} ms`));
  }
  t.latency.replaceChildren(...rows);
}

function onMessage(m) {
  switch (m.type) {
    case "ready":
      sessionId = m.session_id;
      retries = 0;
      if (!recorder) setState("ready", "Ready");
      break;
    case "transcript":
      if (turn) {
        turn.you.textContent = m.text;
        turn.li.dataset.status = "thinking";
      }
      setState("thinking", "Thinking…");
      break;
    case "delta":
      if (turn) turn.reply.textContent += m.text;
      break;
    case "audio":
      if (turn) play(turn, m.audio_b64);
      break;
    case "done":
      if (turn) {
        turn.reply.textContent = m.response.response_text;
        showLatency(turn, m.response.latency);
        finish(turn, "complete");
      }
      if (!sources.size && !recorder) setState("ready", "Ready");
      break;
    case "interrupted":
      break; // the page already stopped playing; the turn was marked when the user interrupted
    case "error":
      if (turn && !turn.done) {
        turn.reply.textContent = m.message;
        turn.reply.classList.add("error");
        finish(turn, "failed");
      } else {
        toast(m.message, "error");
      }
      if (!recorder) setState("ready", "Ready");
      break;
  }
}

// -- playback ------------------------------------------------------------------------------------------

async function play(t, b64) {
  const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  let buffer;
  try {
    buffer = await audio.decodeAudioData(bytes.buffer);
  } catch {
    toast("A sentence's audio could not be played", "error");
    return;
  }
  if (t !== turn || t.li.dataset.status === "interrupted") return; // cut off while it was decoding
  const source = audio.createBufferSource();
  source.buffer = buffer;
  source.connect(audio.destination);
  const at = Math.max(playHead, audio.currentTime + 0.02);
  source.start(at);
  playHead = at + buffer.duration;
  sources.add(source);
  t.clips += 1;
  t.seconds += buffer.duration;
  t.li.dataset.clips = String(t.clips);
  t.li.dataset.audioSeconds = t.seconds.toFixed(2);
  if (!t.firstSound) {
    t.firstSound = performance.now() + (at - audio.currentTime) * 1000;
    showLatency(t); // the turn may have ended while this first sentence was being decoded
  }
  $("interrupt").disabled = false;
  setState("speaking", "Speaking… (press the microphone to talk over it, or Esc)");
  source.onended = () => {
    sources.delete(source);
    if (!sources.size) {
      $("interrupt").disabled = !(turn && !turn.done);
      if (!recorder) setState("ready", "Ready");
    }
  };
}

function stopPlayback() {
  for (const source of sources) {
    source.onended = null;
    try {
      source.stop();
    } catch {
      /* not started yet */
    }
  }
  sources.clear();
  playHead = 0;
}

/** Barge-in: silence at once here, and tell the server to stop generating and speaking. */
function interrupt() {
  const answering = turn && !turn.done;
  if (!answering && !sources.size) return;
  stopPlayback();
  send({ type: "interrupt" });
  if (answering) {
    turn.reply.append(el("em", { class: "muted" }, " (interrupted)"));
    finish(turn, "interrupted");
  }
  $("interrupt").disabled = true;
  if (!recorder) setState("ready", "Interrupted. Ready");
}

// -- recording -----------------------------------------------------------------------------------------

async function startRecording() {
  audio ??= new AudioContext();
  if (audio.state === "suspended") await audio.resume();
  interrupt();
  try {
    mic = await navigator.mediaDevices.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } });
  } catch (e) {
    toast(`The microphone is not available: ${e.message}`, "error");
    return;
  }
  const type = MediaRecorder.isTypeSupported("audio/webm;codecs=opus") ? "audio/webm;codecs=opus" : "audio/webm";
  const rag = $("voice-rag").checked;
  send({
    type: "start",
    format: "webm",
    audio_format: "wav",
    model: $("voice-model").value || null,
    enable_rag: rag,
    collection: rag ? $("voice-collection").value || null : null,
  });
  turn = newTurn();
  recorder = new MediaRecorder(mic, { mimeType: type });
  recorder.ondataavailable = (e) => {
    if (!e.data.size) return;
    const blob = e.data;
    sending = sending.then(async () => ws?.readyState === WebSocket.OPEN && ws.send(await blob.arrayBuffer()));
  };
  recorder.onstop = () => {
    mic?.getTracks().forEach((track) => track.stop()); // the browser's microphone light goes off
    mic = null;
  };
  recorder.start(250); // a chunk every 250 ms: the audio is on the server when the user stops
  setState("recording", "Listening… press the microphone again when you are done");
}

function stopRecording(sendEnd = true) {
  if (!recorder) return;
  const stopping = recorder;
  recorder = null;
  if (sendEnd) {
    stopping.addEventListener(
      "stop",
      () => {
        sending = sending.then(() => {
          if (turn) turn.endAt = performance.now();
          send({ type: "end" });
        });
      },
      { once: true },
    );
    if (turn) turn.li.dataset.status = "sent";
    setState("thinking", "Listening to what you said…");
  }
  stopping.stop();
}

$("mic").addEventListener("click", () => (recorder ? stopRecording() : startRecording()));
$("interrupt").addEventListener("click", interrupt);
document.addEventListener("keydown", (e) => {
  if (e.key === "Escape") interrupt();
  const typing = e.target instanceof HTMLElement && e.target.closest("input, select, textarea, button, a");
  if (e.key === " " && !typing) {
    e.preventDefault();
    $("mic").click();
  }
});

// -- options: the model (chat aliases) and documents (the user's collections) ---------------------------

async function loadModels() {
  const models = await api("/v1/models");
  const chat = models.data.filter((m) => m.kind === "chat");
  $("voice-model").append(...chat.map((m) => el("option", { value: m.id }, m.id)));
}

async function loadCollections() {
  const collections = await api("/api/rag/collections");
  if (!collections.length) return;
  $("voice-collection").replaceChildren(...collections.map((c) => el("option", { value: c.name }, c.name)));
  $("voice-rag").disabled = false;
  $("voice-rag").addEventListener("change", () => ($("voice-collection").disabled = !$("voice-rag").checked));
}

if (!window.MediaRecorder || !navigator.mediaDevices) {
  setState("closed", "This browser cannot record audio here (it needs https, or http on localhost).");
} else {
  setState("connecting", "Connecting…");
  connect();
}
Promise.all([loadModels(), loadCollections()]).catch((e) => toast(e.message, "error"));
