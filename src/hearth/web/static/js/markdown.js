// Model answers as Markdown (marked, GFM: code blocks, tables), sanitized by DOMPurify before they touch
// the page: no scripts, no event handlers, no javascript:/data: links, no forms or frames. Citations [n]
// become buttons only after sanitizing, built with the DOM, so no text can smuggle markup through them.
import { marked } from "marked";
import DOMPurify from "dompurify";

marked.use({ gfm: true, breaks: true });

const SAFE_LINK = /^(https?:|mailto:|\/(?!\/)|#)/i;

DOMPurify.addHook("afterSanitizeAttributes", (node) => {
  if (node.tagName === "A") {
    const href = node.getAttribute("href") ?? "";
    if (!SAFE_LINK.test(href.trim())) node.removeAttribute("href");
    else if (/^https?:/i.test(href.trim())) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer nofollow");
    }
  }
});

const PURIFY = {
  FORBID_TAGS: ["style", "form", "input", "button", "textarea", "select", "iframe", "object", "embed", "svg", "math"],
  FORBID_ATTR: ["style", "class", "id", "name"],
  ALLOW_DATA_ATTR: false,
};

const CITATION = /\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/g;
const HAS_CITATION = /\[\d{1,3}(?:\s*,\s*\d{1,3})*\]/;

/** Render `text` into `target`; `[n]` with 1 <= n <= sourceCount become buttons calling onCite(n). */
export function renderMarkdown(target, text, { sourceCount = 0, onCite } = {}) {
  const html = DOMPurify.sanitize(marked.parse(text ?? "", { async: false }), PURIFY);
  target.innerHTML = html; // sanitized above
  if (sourceCount > 0) linkCitations(target, sourceCount, onCite);
}

function linkCitations(root, count, onCite) {
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT, {
    acceptNode: (n) => (n.parentElement.closest("code, pre, a") ? NodeFilter.FILTER_REJECT : NodeFilter.FILTER_ACCEPT),
  });
  const nodes = [];
  while (walker.nextNode()) if (HAS_CITATION.test(walker.currentNode.data)) nodes.push(walker.currentNode);
  for (const node of nodes) {
    const parts = [];
    let last = 0;
    node.data.replace(CITATION, (match, numbers, offset) => {
      parts.push(document.createTextNode(node.data.slice(last, offset)));
      for (const n of numbers.split(",").map((x) => Number(x.trim()))) {
        if (n >= 1 && n <= count) {
          const button = document.createElement("button");
          button.type = "button";
          button.className = "cite";
          button.textContent = `[${n}]`;
          button.setAttribute("aria-label", `Source ${n}`);
          button.addEventListener("click", () => onCite?.(n));
          parts.push(button);
        } else parts.push(document.createTextNode(`[${n}]`));
      }
      last = offset + match.length;
      return match;
    });
    parts.push(document.createTextNode(node.data.slice(last)));
    node.replaceWith(...parts);
  }
}
