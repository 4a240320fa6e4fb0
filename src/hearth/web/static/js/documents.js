// The documents screen: collections (create, delete), uploads of many files by drag-and-drop or the file
// picker, each with its own progress and ingestion status (polled until indexed or failed), delete.
import { api, upload } from "./api.js";
import { el, toast } from "./dom.js";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const state = { collection: params.get("c"), collections: [], polling: new Map() };
const DONE = new Set(["indexed", "failed"]);

async function loadCollections() {
  try {
    state.collections = await api("/api/rag/collections");
  } catch (e) {
    return toast(e.message, "error");
  }
  if (!state.collection && state.collections.length) state.collection = state.collections[0].name;
  $("coll-list").replaceChildren(
    ...state.collections.map((c) =>
      el(
        "li",
        {},
        el(
          "a",
          { href: `/documents?c=${encodeURIComponent(c.name)}`, "aria-current": c.name === state.collection ? "page" : null, onclick: (e) => choose(e, c.name) },
          c.name,
        ),
        el("small", { class: "muted" }, ` ${c.document_count} doc${c.document_count === 1 ? "" : "s"}${c.owned ? "" : " · shared"}`),
      ),
    ),
  );
  if (!state.collections.length) $("coll-list").append(el("li", { class: "muted" }, "No collections yet."));
  showCollection();
}

function choose(event, name) {
  event.preventDefault();
  state.collection = name;
  history.replaceState(null, "", `/documents?c=${encodeURIComponent(name)}`);
  loadCollections();
}

function current() {
  return state.collections.find((c) => c.name === state.collection);
}

function showCollection() {
  const c = current();
  $("coll-title").textContent = c ? c.name : "Choose or create a collection";
  $("coll-delete").disabled = !c || !c.owned;
  $("dropzone").hidden = !c || !c.owned;
  $("doc-table").hidden = !c;
  $("debugger").hidden = !c;
  $("sharing").hidden = !c || !c.owned;
  if (c?.owned) showShares(c);
  if (c) loadDocuments();
}

// -- sharing --------------------------------------------------------------------------------------

function showShares(c) {
  const box = $("shared-with");
  if (!c.shared_with.length) return box.replaceChildren("Not shared.");
  box.replaceChildren(
    "Shared with: ",
    ...c.shared_with.map((name) =>
      el(
        "span",
        { class: "chip" },
        name,
        " ",
        el("button", { type: "button", class: "link", "aria-label": `Stop sharing with ${name}`, onclick: () => unshare(c, name) }, "×"),
      ),
    ),
  );
}

async function unshare(c, name) {
  try {
    await api(`/api/rag/collections/${encodeURIComponent(c.name)}/shares/${encodeURIComponent(name)}`, { method: "DELETE" });
    toast(`No longer shared with ${name}`);
    loadCollections();
  } catch (e) {
    toast(e.message, "error");
  }
}

$("share-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const username = $("share-user").value.trim();
  try {
    await api(`/api/rag/collections/${encodeURIComponent(state.collection)}/shares`, { method: "POST", json: { username } });
    $("share-user").value = "";
    toast(`Shared with ${username}`);
    loadCollections();
  } catch (err) {
    toast(err.message, "error");
  }
});

// -- retrieval debugger -------------------------------------------------------------------------------

$("debug-form").addEventListener("submit", async (e) => {
  e.preventDefault();
  const body = { collection: state.collection, query: $("debug-query").value, generate: false, rerank: $("debug-rerank").checked, top_n: 10 };
  if ($("debug-mode").value) body.mode = $("debug-mode").value;
  let out;
  try {
    out = await api("/api/rag/query", { method: "POST", json: body });
  } catch (err) {
    return toast(err.message, "error");
  }
  const stages = Object.entries(out.latency_ms).map(([stage, ms]) => `${stage} ${Number(ms).toFixed(1)} ms`);
  $("debug-latency").textContent = `${out.sources.length} chunks, mode ${out.mode}. ${stages.join(" · ")}`;
  $("debug-rows").replaceChildren(
    ...out.sources.map((s, i) =>
      el(
        "tr",
        {},
        el("td", {}, String(i + 1)),
        el("td", {}, el("strong", {}, s.title || "Untitled"), s.metadata?.page != null ? ` (page ${s.metadata.page})` : "", el("div", { class: "small" }, s.text)),
        el("td", {}, Number(s.score).toFixed(4)),
        el("td", {}, s.rerank_score == null ? "—" : Number(s.rerank_score).toFixed(4)),
      ),
    ),
  );
  $("debug-table").hidden = false;
});

// -- documents ------------------------------------------------------------------------------------

function statusCell(status, error, progress) {
  const label = progress != null && progress < 1 ? `uploading ${Math.round(progress * 100)}%` : status;
  return el("td", {}, el("span", { class: `status status-${status}` }, label), error ? el("div", { class: "error small" }, error) : null);
}

function rowFor(doc) {
  const row = el(
    "tr",
    { dataset: { id: doc.id, status: doc.status } },
    el("td", {}, el("a", { href: `/documents/${encodeURIComponent(doc.id)}` }, doc.title || doc.source), el("div", { class: "muted small" }, doc.source)),
    statusCell(doc.status, doc.error),
    el("td", {}, String(doc.chunk_count ?? 0)),
    el("td", {}, current()?.owned ? el("button", { type: "button", class: "danger small", "aria-label": `Delete ${doc.title || doc.source}`, onclick: () => remove(doc) }, "Delete") : null),
  );
  return row;
}

async function loadDocuments() {
  const name = state.collection;
  let docs;
  try {
    docs = await api(`/api/rag/collections/${encodeURIComponent(name)}/documents?limit=500`);
  } catch (e) {
    return toast(e.message, "error");
  }
  if (name !== state.collection) return;
  const rows = $("doc-rows");
  const uploading = [...rows.querySelectorAll("tr[data-upload]")];
  rows.replaceChildren(...uploading, ...docs.map(rowFor));
  for (const d of docs) if (!DONE.has(d.status)) poll(d.id);
}

function poll(id) {
  if (state.polling.has(id)) return;
  const tick = async () => {
    let doc;
    try {
      doc = await api(`/api/rag/documents/${encodeURIComponent(id)}`);
    } catch {
      state.polling.delete(id);
      return;
    }
    const row = $("doc-rows").querySelector(`tr[data-id="${CSS.escape(id)}"]`);
    if (row) row.replaceWith(rowFor(doc));
    if (DONE.has(doc.status)) state.polling.delete(id);
    else state.polling.set(id, setTimeout(tick, 700));
  };
  state.polling.set(id, setTimeout(tick, 400));
}

async function remove(doc) {
  if (!confirm(`Delete "${doc.title || doc.source}"?`)) return;
  try {
    await api(`/api/rag/documents/${encodeURIComponent(doc.id)}`, { method: "DELETE" });
    $("doc-rows").querySelector(`tr[data-id="${CSS.escape(doc.id)}"]`)?.remove();
    toast("Document deleted");
  } catch (e) {
    toast(e.message, "error");
  }
}

// -- uploads --------------------------------------------------------------------------------------

async function uploadOne(file) {
  const row = el(
    "tr",
    { dataset: { upload: file.name, status: "pending" } },
    el("td", {}, file.name),
    statusCell("pending", null, 0),
    el("td", {}, "—"),
    el("td", {}),
  );
  $("doc-rows").prepend(row);
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    const out = await upload(`/api/rag/collections/${encodeURIComponent(state.collection)}/documents`, form, (p) =>
      row.children[1].replaceWith(statusCell("pending", null, p)),
    );
    const existing = $("doc-rows").querySelector(`tr[data-id="${CSS.escape(out.document.id)}"]`);
    existing?.remove();
    row.replaceWith(rowFor(out.document));
    if (!DONE.has(out.document.status)) poll(out.document.id);
  } catch (e) {
    row.dataset.status = "failed";
    row.children[1].replaceWith(statusCell("failed", e.message));
  }
}

function uploadAll(files) {
  if (!current()) return toast("Choose a collection first", "error");
  // Three at a time: the server queues them; the browser need not open one connection per file.
  const queue = [...files];
  const worker = async () => {
    while (queue.length) await uploadOne(queue.shift());
  };
  Promise.all([worker(), worker(), worker()]).then(() => loadCollectionsQuiet());
}

async function loadCollectionsQuiet() {
  try {
    state.collections = await api("/api/rag/collections");
  } catch {
    /* the list refreshes on the next load */
  }
}

const zone = $("dropzone");
zone.addEventListener("dragover", (e) => {
  e.preventDefault();
  zone.classList.add("over");
});
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  if (e.dataTransfer?.files?.length) uploadAll(e.dataTransfer.files);
});
$("file-input").addEventListener("change", (e) => {
  uploadAll(e.target.files);
  e.target.value = "";
});

// -- collections ------------------------------------------------------------------------------------

$("coll-create").addEventListener("submit", async (e) => {
  e.preventDefault();
  const name = $("coll-name").value.trim();
  try {
    await api("/api/rag/collections", { method: "POST", json: { name } });
    $("coll-name").value = "";
    state.collection = name;
    history.replaceState(null, "", `/documents?c=${encodeURIComponent(name)}`);
    toast(`Collection ${name} created`);
    loadCollections();
  } catch (err) {
    toast(err.message, "error");
  }
});

$("coll-delete").addEventListener("click", async () => {
  const c = current();
  if (!c || !confirm(`Delete collection "${c.name}" and all its documents?`)) return;
  try {
    await api(`/api/rag/collections/${encodeURIComponent(c.name)}`, { method: "DELETE" });
    state.collection = null;
    history.replaceState(null, "", "/documents");
    toast(`Collection ${c.name} deleted`);
    loadCollections();
  } catch (e) {
    toast(e.message, "error");
  }
});

loadCollections();
