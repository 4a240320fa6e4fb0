// The chat screen: conversations (list, search, new, rename, delete), streamed replies rendered as
// sanitized Markdown, stop, model picker, RAG switch with collection picker, numbered citations.
import { api, streamEvents, ApiError } from "./api.js";
import { el, toast } from "./dom.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const root = document.querySelector(".chat");
const state = { id: root.dataset.conversation || null, controller: null, title: "New chat" };

// -- conversations list ---------------------------------------------------------------------------

async function loadConversations(query = "") {
  const list = $("conv-list");
  let items;
  try {
    items = query
      ? (await api(`/api/conversations/search?q=${encodeURIComponent(query)}`)).map((h) => ({ ...h.conversation, snippet: h.snippet }))
      : await api("/api/conversations?limit=100");
  } catch (e) {
    toast(e.message, "error");
    return;
  }
  list.replaceChildren(
    ...items.map((c) =>
      el(
        "li",
        {},
        el("a", { href: `/chat/${encodeURIComponent(c.id)}`, "aria-current": c.id === state.id ? "page" : null }, c.title),
        c.snippet && query ? el("small", { class: "muted" }, c.snippet) : null,
      ),
    ),
  );
  if (!items.length) list.append(el("li", { class: "muted" }, query ? "No matches." : "No conversations yet."));
}

let searchTimer;
$("conv-search").addEventListener("input", (e) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => loadConversations(e.target.value.trim()), 250);
});
$("new-chat").addEventListener("click", () => location.assign("/chat"));

function setTitle(title) {
  state.title = title;
  $("conv-title").textContent = title;
  document.title = `${title} · Hearth`;
  $("rename").disabled = $("delete").disabled = !state.id;
}

$("rename").addEventListener("click", async () => {
  const title = prompt("New title for this conversation", state.title);
  if (!title || !title.trim()) return;
  try {
    const out = await api(`/api/conversations/${state.id}`, { method: "PATCH", json: { title: title.trim() } });
    setTitle(out.title);
    loadConversations();
  } catch (e) {
    toast(e.message, "error");
  }
});

$("delete").addEventListener("click", async () => {
  if (!confirm(`Delete "${state.title}" and all its messages?`)) return;
  try {
    await api(`/api/conversations/${state.id}`, { method: "DELETE" });
    location.assign("/chat");
  } catch (e) {
    toast(e.message, "error");
  }
});

// -- messages -------------------------------------------------------------------------------------

function showSource(sources, n) {
  const s = sources[n - 1];
  if (!s) return;
  $("cite-title").textContent = `[${n}] ${s.title || "Untitled document"}`;
  const page = s.metadata?.page ?? s.page;
  $("cite-meta").textContent = [page != null ? `page ${page}` : null, s.score != null ? `score ${Number(s.score).toFixed(3)}` : null]
    .filter(Boolean)
    .join(" · ");
  $("cite-text").textContent = s.text ?? "";
  $("cite-link").href = `/documents/${encodeURIComponent(s.document_id)}`;
  $("cite-dialog").showModal();
}

function sourcesList(sources) {
  if (!sources?.length) return null;
  return el(
    "ol",
    { class: "sources", "aria-label": "Sources" },
    sources.map((s, i) =>
      el("li", {}, el("button", { type: "button", class: "link", onclick: () => showSource(sources, i + 1) }, `[${i + 1}] ${s.title || "Untitled"}`)),
    ),
  );
}

function messageView(role, { content = "", sources = [], status = "complete", model } = {}) {
  const body = el("div", { class: "body" });
  const meta = el("div", { class: "meta" }, role === "user" ? "You" : `Assistant${model ? ` · ${model}` : ""}`);
  const node = el("article", { class: `msg msg-${role}`, dataset: { role } }, meta, body);
  const view = {
    node,
    body,
    text: content,
    sources,
    render() {
      if (role === "assistant") {
        renderMarkdown(body, view.text, { sourceCount: view.sources.length, onCite: (n) => showSource(view.sources, n) });
      } else body.textContent = view.text;
    },
    finish(status) {
      node.querySelector(".sources")?.remove();
      const list = sourcesList(view.sources);
      if (list) node.append(list);
      if (status === "interrupted") node.append(el("p", { class: "muted small" }, "Stopped before the end."));
      node.append(
        el(
          "div",
          { class: "msg-actions" },
          el("button", { type: "button", class: "small", onclick: () => copy(view.text) }, "Copy"),
          el("button", { type: "button", class: "small regenerate", onclick: regenerate }, "Regenerate"),
        ),
      );
    },
  };
  view.render();
  if (role === "assistant" && status !== "streaming") view.finish(status);
  return view;
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    toast("Copied");
  } catch {
    toast("Copying is not allowed here", "error");
  }
}

// Messages are immutable: regenerating asks the same question again, as a new exchange.
function regenerate() {
  const asked = [...document.querySelectorAll("article.msg-user")].pop();
  if (asked && !state.controller) send(asked.querySelector(".body").textContent);
}

function append(view) {
  $("messages").append(view.node);
  view.node.scrollIntoView({ block: "end" });
}

async function loadConversation() {
  if (!state.id) return setTitle("New chat");
  try {
    const c = await api(`/api/conversations/${encodeURIComponent(state.id)}`);
    setTitle(c.title);
    for (const m of c.messages) {
      append(messageView(m.role, { content: m.content, status: m.status, sources: m.metadata?.rag_sources ?? [], model: m.metadata?.model_used }));
    }
  } catch (e) {
    toast(e.message, "error");
  }
}

// -- options: models, RAG, collections ---------------------------------------------------------------

async function loadOptions() {
  const [models, prefs, collections] = await Promise.all([
    api("/v1/models").catch(() => ({ data: [] })),
    api("/api/me/preferences").catch(() => ({})),
    api("/api/rag/collections").catch(() => []),
  ]);
  const chatModels = models.data.filter((m) => m.kind === "chat");
  $("model").replaceChildren(...chatModels.map((m) => el("option", { value: m.id, title: m.description || null }, m.id)));
  if (prefs.model && chatModels.some((m) => m.id === prefs.model)) $("model").value = prefs.model;
  else if (chatModels.some((m) => m.id === "chat")) $("model").value = "chat";
  $("collection").replaceChildren(...collections.map((c) => el("option", { value: c.name }, c.owned ? c.name : `${c.name} (shared)`)));
  if (prefs.collection) $("collection").value = prefs.collection;
  $("rag").checked = Boolean(prefs.rag_enabled) && collections.length > 0;
  $("rag").disabled = collections.length === 0;
  $("rag").title = collections.length === 0 ? "Create a collection under Documents first" : "";
  $("collection").disabled = !$("rag").checked;
}

$("rag").addEventListener("change", () => ($("collection").disabled = !$("rag").checked));

// -- sending and streaming ----------------------------------------------------------------------------

function busy(on) {
  $("send").disabled = on;
  $("stop").hidden = !on;
  if (on) $("stop").focus();
  else $("prompt").focus();
}

async function send(content) {
  const body = { content, model: $("model").value || undefined, rag: $("rag").checked };
  if (body.rag) body.collection = $("collection").value;
  const url = state.id ? `/api/conversations/${encodeURIComponent(state.id)}/messages` : "/api/conversations";
  append(messageView("user", { content }));
  const reply = messageView("assistant", { status: "streaming", model: body.model });
  reply.node.setAttribute("aria-busy", "true");
  append(reply);
  state.controller = new AbortController();
  busy(true);
  let pending = false;
  const paint = () => {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      reply.render();
    });
  };
  let status = "complete";
  try {
    for await (const { event, data } of streamEvents(url, { json: body, signal: state.controller.signal })) {
      if (event === "start") {
        reply.sources = data.sources ?? [];
        if (!state.id) {
          state.id = data.conversation_id;
          history.replaceState(null, "", `/chat/${encodeURIComponent(state.id)}`);
          setTitle(content.slice(0, 60));
        }
      } else if (event === "delta") {
        reply.text += data.content;
        paint();
      } else if (event === "title") {
        setTitle(data.title);
      } else if (event === "error") {
        status = "interrupted";
        toast(data.error?.message ?? "the model failed", "error");
      }
    }
  } catch (e) {
    if (e.name === "AbortError") status = "interrupted";
    else {
      status = "interrupted";
      if (e instanceof ApiError) reply.text ||= `*${e.message}*`;
      toast(e.message, "error");
    }
  } finally {
    state.controller = null;
    reply.render();
    reply.finish(status);
    reply.node.removeAttribute("aria-busy");
    reply.node.dataset.status = status;
    busy(false);
    loadConversations();
  }
}

$("stop").addEventListener("click", () => state.controller?.abort());

$("composer").addEventListener("submit", (e) => {
  e.preventDefault();
  const content = $("prompt").value.trim();
  if (!content || state.controller) return;
  $("prompt").value = "";
  send(content);
});

$("prompt").addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    $("composer").requestSubmit();
  }
});

document.addEventListener("keydown", (e) => {
  if (e.key === "Escape" && state.controller) state.controller.abort();
});

loadOptions();
loadConversations();
loadConversation().then(() => $("prompt").focus());
